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


"""The README's demo command runs end to end (scaled down).

``tox -e demo`` runs ``python -m tests.demo``; this runs the same
``tests.demo.main`` with fewer servers and checks what it printed, which
it measured from Nova and the real Prometheus.
"""

from tests import demo  # noqa: I100  isort:skip

import io
import re

import testtools

from tests.harness import prometheus


class TestDemo(testtools.TestCase):

    def test_demo_runs_and_reports_measured_results(self):
        prometheus.require_prometheus(self)
        out = io.StringIO()
        # 36 servers load 12 hosts lightly: a combined imbalance of about
        # 0.02, which the default level (3) tolerates; level 5 balances.
        code = demo.main(['--servers', '36', '--boots', '2',
                          '--max-migrations', '4', '--aggressiveness', '5'],
                         stdout=out)
        text = out.getvalue()
        self.assertEqual(0, code, text)
        self.assertIn('Metrics: real Prometheus at http://127.0.0.1:', text)
        self.assertIn('Nova shows 4 of 4 servers on their planned host',
                      text)
        self.assertIn('(intact)', text)
        found = re.search(r'Combined imbalance, measured: ([0-9.]+) at start,'
                          r' ([0-9.]+) after the weighed boots, ([0-9.]+) '
                          r'after 4 migrations', text)
        self.assertIsNotNone(found, text)
        start, boots, end = map(float, found.groups())
        self.assertLess(end, boots)
