"""Data-prep engines, used by the data stages (`pretrain_data`, `sft_data`, `rl_data`).

    synthetic   a seeded arithmetic corpus: pretraining text, SFT conversations, RL problems, held-out split
    sources     `SourceConfig`/`BlendConfig`, `read_source` (synthetic, local/fsspec files, Hugging Face),
                scale limits, and the `InputDatasetInfo` record of every source
    tokenizer   load a Hugging Face tokenizer, or train a byte-level BPE; `TokenEncoder` for worker processes
    indexed     Megatron `.bin/.idx` (MMIDIDX) writer, byte-identical to megatron-core's builder, and a reader
    sft         chat-template tokenization with an assistant-only loss mask, first-fit packing, packed Parquet
    rl          NeMo-RL JSONL rows (problem/expected_answer or input/output)

Heavy libraries (numpy, tokenizers, transformers, pyarrow, zstandard) are imported inside functions, so
importing these modules stays cheap.
"""
