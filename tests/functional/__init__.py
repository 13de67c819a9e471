# Import Nova's functional harness before any test module imports requests,
# keystoneauth1 or openstacksdk: it chooses the concurrency mode (eventlet
# monkey patching) at import time.
from nova_kronos.testing import nova_cloud  # noqa: F401
