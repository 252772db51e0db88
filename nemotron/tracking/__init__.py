"""Stores (the manifest store on fsspec), the `${art:}` resolver, the Hydra callback and lineage."""
