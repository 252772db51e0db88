"""Job integration: the session (`Tracking`), the `${art:}` resolver, the Hydra callback, the run record, the
Python API, the completion report, the W&B mirror (`wandb_mirror`, the one module that talks to W&B), and
registration of existing data (`stage=register` and `nemotron-art import`). The operations only `nemotron-art`
uses (lineage, verify, diff, rerun, bundles, gc) live beside its commands in `nemotron.artcli`; the store is
`nemotron.store`."""
