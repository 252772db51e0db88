from nemotron.cli import main

main()
