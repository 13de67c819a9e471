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


import numpy as np
import testtools

from nova_kronos import scoring


class TestScoring(testtools.TestCase):

    def test_dispersion_is_population_std(self):
        self.assertAlmostEqual(0.5, scoring.dispersion([0.0, 1.0]))
        self.assertAlmostEqual(0.0, scoring.dispersion([0.3, 0.3, 0.3]))
        self.assertEqual(0.0, scoring.dispersion([0.7]))

    def test_imbalance_is_weighted_sum(self):
        loads = np.array([[0.0, 1.0], [0.5, 0.5]])
        self.assertAlmostEqual(0.25, scoring.imbalance(loads, [0.5, 0.5]))
        self.assertAlmostEqual(0.5, scoring.imbalance(loads, [1.0, 0.0]))

    def test_candidate_imbalance_matches_recomputation(self):
        rng = np.random.default_rng(7)
        loads = rng.uniform(0, 1, size=(2, 5))
        weights = np.array([0.6, 0.4])
        src = np.array([0, 0, 3])
        shares = rng.uniform(0, 0.1, size=(2, 3))
        scale = rng.uniform(0.5, 2, size=(2, 3, 5))
        got = scoring.candidate_imbalance(loads, weights, src, shares, scale)
        for v in range(3):
            for h in range(5):
                if h == src[v]:
                    continue
                new = loads.copy()
                new[:, src[v]] -= shares[:, v]
                new[:, h] += shares[:, v] * scale[:, v, h]
                self.assertAlmostEqual(scoring.imbalance(new, weights),
                                       got[v, h], places=12)

    def test_host_weights_spread_prefers_emptiest(self):
        w = scoring.host_weights([[0.2, 0.8]], ['spread'], [1.0], [0.9])
        self.assertGreater(w[0], w[1])
        self.assertAlmostEqual(0.8, w[0])

    def test_host_weights_pack_prefers_fullest_under_threshold(self):
        w = scoring.host_weights([[0.2, 0.7, 0.95]], ['pack'], [1.0], [0.9])
        self.assertEqual(1, int(np.argmax(w)))
        self.assertEqual(0.0, w[2])

    def test_missing_load_is_neutral(self):
        w = scoring.host_weights([[np.nan, 0.1], [0.5, np.nan]],
                                 ['spread', 'pack'], [0.5, 0.5], [0.9, 0.9])
        self.assertAlmostEqual(0.5 * scoring.NEUTRAL + 0.5 * 0.5, w[0])
        self.assertAlmostEqual(0.5 * 0.9 + 0.5 * scoring.NEUTRAL, w[1])
