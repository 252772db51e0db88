import sys

from nemotron.artcli import main

sys.exit(main())
