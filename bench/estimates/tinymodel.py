"""Write a tiny random-weight Llama GGUF with Llama 3's vocabulary: ``python tinymodel.py VOCAB.gguf OUT.gguf``.

Runs in a throwaway venv with ``numpy`` and llama.cpp's own ``gguf`` package (both from the llama.cpp source tree
``bench/estimates/llamacpp`` builds). The vocabulary, merges and pre-tokenizer come from llama.cpp's test file
``models/ggml-vocab-llama-bpe.gguf`` (Llama 3's tokenizer); the weights are random (two layers, 64 wide), so the
engine tokenizes and counts exactly as for Llama 3 but generates gibberish. The chat template is Llama 3's
(``<|start_header_id|>role<|end_header_id|>\\n\\ncontent<|eot_id|>``), without Llama 3.1's default system prompt.
"""

from __future__ import annotations

import sys
from typing import Any

import gguf  # type: ignore[import-not-found]
import numpy as np  # type: ignore[import-not-found]

N_VOCAB, N_EMBD, N_FF, N_HEAD, N_LAYER = 128256, 64, 128, 4, 2
TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


def _value(reader: Any, name: str) -> Any:
    field = reader.fields[name]
    kind = field.types[0]
    if kind == gguf.GGUFValueType.ARRAY:
        if field.types[1] == gguf.GGUFValueType.STRING:
            return [bytes(field.parts[i]).decode("utf-8", "surrogateescape") for i in field.data]
        return [int(field.parts[i][0]) for i in field.data]
    if kind == gguf.GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]).decode()
    return field.parts[field.data[0]][0]


def main(vocab_path: str, out_path: str) -> None:
    vocab = gguf.GGUFReader(vocab_path)
    out = gguf.GGUFWriter(out_path, "llama")
    out.add_name("tiny-random-llama3-vocab")
    out.add_context_length(4096)
    out.add_embedding_length(N_EMBD)
    out.add_feed_forward_length(N_FF)
    out.add_block_count(N_LAYER)
    out.add_head_count(N_HEAD)
    out.add_head_count_kv(N_HEAD)
    out.add_rope_freq_base(500000.0)
    out.add_layer_norm_rms_eps(1e-5)
    out.add_rope_dimension_count(N_EMBD // N_HEAD)
    out.add_vocab_size(N_VOCAB)
    out.add_file_type(1)
    out.add_tokenizer_model(_value(vocab, "tokenizer.ggml.model"))
    out.add_tokenizer_pre(_value(vocab, "tokenizer.ggml.pre"))
    out.add_token_list(_value(vocab, "tokenizer.ggml.tokens"))
    out.add_token_types(_value(vocab, "tokenizer.ggml.token_type"))
    out.add_token_merges(_value(vocab, "tokenizer.ggml.merges"))
    out.add_bos_token_id(int(_value(vocab, "tokenizer.ggml.bos_token_id")))
    out.add_eos_token_id(int(_value(vocab, "tokenizer.ggml.eos_token_id")))
    out.add_chat_template(TEMPLATE)
    rng = np.random.default_rng(0)

    def weights(name: str, *shape: int) -> None:
        out.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float16))

    weights("token_embd.weight", N_VOCAB, N_EMBD)
    out.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    weights("output.weight", N_VOCAB, N_EMBD)
    for i in range(N_LAYER):
        out.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        out.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            weights(f"blk.{i}.{name}.weight", N_EMBD, N_EMBD)
        weights(f"blk.{i}.ffn_gate.weight", N_FF, N_EMBD)
        weights(f"blk.{i}.ffn_up.weight", N_FF, N_EMBD)
        weights(f"blk.{i}.ffn_down.weight", N_EMBD, N_FF)
    out.write_header_to_file()
    out.write_kv_data_to_file()
    out.write_tensors_to_file()
    out.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
