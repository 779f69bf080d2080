"""The gateway benchmark: a mock upstream, Interlock and the LiteLLM proxy under the same load, in the same run.

Run it with ``bench/run``; ``bench/README.md`` says what each figure means.
"""
