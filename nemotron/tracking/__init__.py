"""Job integration: the session (`Tracking`), the `${art:}` resolver, the Hydra callback, the run record, the
Python API, the completion report, the W&B mirror, and registration of existing data (`stage=register` and
`nemotron-art import`). For now also diff and reproduce, which `nemotron-art diff` / `rerun` use; the other
operations only `nemotron-art` uses (lineage, verify, bundles, gc) live beside its commands in `nemotron.artcli`.
The store is `nemotron.store`."""
