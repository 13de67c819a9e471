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


"""Nova scheduler weigher scoring hosts from Prometheus.

Enable it by adding ``nova_kronos.scheduler.weights.PrometheusWeigher`` to
``[filter_scheduler] weight_classes`` in nova.conf, comma-separated after
``nova.scheduler.weights.all_weighers`` to keep Nova's own weighers.

Nova loads weighers by dotted path (``nova/loadables.py``). The weigher
fetches host loads once per scheduling request (in ``weigh_objects``, which
receives every candidate host), through a TTL cache shared with the filter.
Weights are :func:`nova_kronos.scoring.host_weights`, in [0, 1], with
``minval``/``maxval`` fixed so that Nova's per-request normalisation does
not magnify tiny differences. A host without data, or every host when
Prometheus is down or slow, gets the neutral weight 0.5; the weigher never
raises.

The multiplier is ``[kronos] weight_multiplier``, overridden per aggregate
by the metadata key ``kronos_weight_multiplier`` through
``nova.scheduler.utils.get_weight_multiplier`` (the minimum wins across
aggregates, Nova's convention).
"""

from nova.scheduler import utils as scheduler_utils
from nova.scheduler import weights
from oslo_log import log as logging

from nova_kronos import conf as kronos_conf
from nova_kronos.scheduler import loads as loads_mod
from nova_kronos import scoring

LOG = logging.getLogger(__name__)
CONF = kronos_conf.CONF

MULTIPLIER_KEY = 'kronos_weight_multiplier'


class PrometheusWeigher(weights.BaseHostWeigher):
    """Spread or pack by the loads the policies' PromQL queries report."""

    minval = 0.0
    maxval = 1.0

    def weight_multiplier(self, host_state):
        return scheduler_utils.get_weight_multiplier(
            host_state, MULTIPLIER_KEY, CONF.kronos.weight_multiplier)

    def weigh_objects(self, weighed_obj_list, weight_properties):
        # Computed here, not per host: one cache lookup per request, and no
        # instance state shared between concurrent requests.
        names = [o.obj.host for o in weighed_obj_list]
        try:
            table = loads_mod.shared_cache().get()
            if table is None or not names:
                return [scoring.NEUTRAL] * len(names)
            policies = table.policies
            values = scoring.host_weights(
                table.for_hosts(names), [p.mode for p in policies],
                [p.weight for p in policies], [p.threshold for p in policies])
            return [min(max(v, self.minval), self.maxval)
                    for v in values.tolist()]
        except Exception:  # never break scheduling
            LOG.exception('kronos: weigher failed; using neutral weights')
            return [scoring.NEUTRAL] * len(names)

    def _weigh_object(self, host_state, weight_properties):
        # Only reached if a caller bypasses weigh_objects.
        return scoring.NEUTRAL
