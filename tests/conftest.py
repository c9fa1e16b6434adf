import os

# No test may reach real AWS: fake credentials and a fixed region before anything imports boto3.
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_SESSION_TOKEN"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ["AWS_REGION"] = "us-east-1"
os.environ.pop("AWS_PROFILE", None)
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

# Hypothesis: `make test` (and CI) explores the same examples on every run, so a test
# can only fail because of a change; `make fuzz` draws new seeds and more examples.
from hypothesis import settings

settings.register_profile("deterministic", derandomize=True, database=None, print_blob=True)
settings.register_profile("fuzz", max_examples=1000, derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("NUDGE_HYPOTHESIS_PROFILE", "deterministic"))
