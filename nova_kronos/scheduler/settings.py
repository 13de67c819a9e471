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


"""The weigher's and filter's options, read so that a bad value never raises.

oslo.config parses an option's value when it is first read, so a typo in
nova.conf (``weight_multiplier = abc``, ``weigher_cache_ttl = -1``) would
raise inside every scheduling request. :class:`SettingsReader` reads every
``[kronos]`` and ``[kronos_prometheus]`` option the scheduler uses, replaces
an invalid one (unparsable, out of its documented range, not finite) by
its documented default and logs one warning per option until the value
changes. The warning never quotes the value of a secret option.
"""

import math
import types

from oslo_log import log as logging

from nova_kronos import conf as kronos_conf
from nova_kronos import text

LOG = logging.getLogger(__name__)

#: (group, options) the scheduler reads; every option of both groups.
GROUPS = (('kronos', kronos_conf.kronos_opts),
          ('kronos_prometheus', kronos_conf.prometheus_opts))


class SettingsReader:
    """Reads validated option values from a ConfigOpts.

    :param conf: ConfigOpts with the nova-kronos options registered.
    """

    def __init__(self, conf):
        self.conf = conf
        self._bad = {}   # (group, name) -> reason last warned about

    def read(self):
        """Every option of :data:`GROUPS`, invalid ones at their default.

        :returns: a namespace with one attribute per group, each holding one
            attribute per option (``settings.kronos.weight_multiplier``);
            it can stand in for the ConfigOpts where a metric source reads
            its options. Never raises.
        """
        groups = {}
        for group, opts in GROUPS:
            values = {}
            for opt in opts:
                values[opt.dest] = self._value(group, opt)
            groups[group] = types.SimpleNamespace(**values)
        return types.SimpleNamespace(**groups)

    def _value(self, group, opt):
        key = (group, opt.dest)
        try:
            value = getattr(getattr(self.conf, group), opt.dest)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError('%s is not a finite number' % value)
        except Exception as e:  # oslo raises several types; never raise
            reason = ('not valid' if opt.secret
                      else text.one_line(str(e), 200))
            if self._bad.get(key) != reason:
                self._bad[key] = reason
                LOG.warning('kronos: [%s] %s is invalid (%s); using its '
                            'default %r until it is fixed', group, opt.dest,
                            reason, opt.default)
            return opt.default
        self._bad.pop(key, None)
        return value
