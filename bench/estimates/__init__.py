"""How far the usage estimate (``interlock.gateway.usage.estimate``, the bundled ``cl100k_base`` tokenizer) is from
a real engine's own counts: ``bench/estimates/llamacpp`` builds llama.cpp's server from source and measures it."""
