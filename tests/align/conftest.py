from tests.guard.conftest import finetuned_data, finetuned_guard  # noqa: F401  (a small guard, trained once)
