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


"""Option registration (nova_kronos.conf)."""

from oslo_config import cfg
import testtools

from nova_kronos import conf as kronos_conf


class TestRegisterOpts(testtools.TestCase):

    def test_overrides_do_not_leak_between_config_objects(self):
        # Nova's global CONF and nova-kronos-manage's own ConfigOpts both
        # carry our options; an override on one must not show in the
        # other (oslo.config shares a registered group object's state).
        first, second = cfg.ConfigOpts(), cfg.ConfigOpts()
        for conf in (first, second):
            kronos_conf.register_opts(conf)
            conf([])
        first.set_override('policies_file', '/from/first', group='kronos')
        first.set_override('max_parallel', 7, group='kronos_rebalance')
        self.addCleanup(first.clear_override, 'policies_file', 'kronos')
        self.assertEqual('/from/first', first.kronos.policies_file)
        self.assertEqual('/etc/nova/kronos-policies.yaml',
                         second.kronos.policies_file)
        self.assertEqual(2, second.kronos_rebalance.max_parallel)
