"""External training backends, used by the stages when `model.backend=megatron`.

- `megatron_bridge`: pretraining and SFT with Megatron-Bridge (v0.6 ConfigContainer), one torchrun per node;
- `nemo_rl`: GRPO with NeMo-RL (v0.7 config schema), Ray started inside the Slurm allocation.

Each turns our config and the pinned input artifact into the backend's own configuration, and either prints
it with the Slurm submission that would run it (`stage.dry_run=true`) or runs it inside the job. The
backends' libraries are imported only inside the functions that run them: building and printing a
configuration needs neither a GPU nor Megatron-Bridge nor NeMo-RL.
"""
