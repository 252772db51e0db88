"""The manifest store and everything it keeps on disk: commit protocol (manifest_store), records, file digests,
and the Hugging Face Hub's create-only commit (hf_commit). Imports nothing of the job machinery."""
