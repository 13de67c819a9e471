# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""Base for functional tests: real Nova in-process + a real Prometheus.

Import this module first in functional test modules: it imports the Nova
harness before anything else (eventlet patching order). The cloud itself
is :class:`tests.harness.kronos_cloud.KronosCloudTestCase`, which the demo
shares.
"""

from tests.harness import kronos_cloud  # noqa: I100  isort:skip

GIB = kronos_cloud.GIB
SAMPLE_POLICIES = kronos_cloud.SAMPLE_POLICIES


class KronosFunctionalTestCase(kronos_cloud.KronosCloudTestCase):
    """4 computes (10 vCPU, 8 GiB) in aggregate ``agg1`` (AZ ``az1``).

    A real Prometheus serves synthetic exporter series.
    """
