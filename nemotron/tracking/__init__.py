"""Job integration: the session (`Tracking`), the `${art:}` resolver, the Hydra callback, the run record, the
Python API, the completion report, the W&B mirror, and registration of existing data (`stage=register` and
`nemotron-art import`). For now also lineage, bundles and diff, which `nemotron-art` uses; its other operations
(gc, verify, lineage rendering) live beside the commands in `nemotron.artcli`. The store is `nemotron.store`."""
