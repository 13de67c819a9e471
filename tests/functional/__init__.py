# Import Nova's functional harness before any test module imports requests,
# keystoneauth1 or openstacksdk: it chooses the concurrency mode (eventlet
# monkey patching) at import time.
from tests.harness import nova_cloud  # noqa: F401
