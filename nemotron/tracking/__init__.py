"""Job integration: the session (`Tracking`), the `${art:}` resolver, the Hydra callback, the run record, the
Python API, the completion report and the W&B mirror; and, for now, the operations only `nemotron-art` uses
(lineage, bundle, gc, verify, diff, registration). The store itself is `nemotron.store`."""
