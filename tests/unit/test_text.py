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


"""Bounded quoting of outside text (nova_kronos.text)."""

import testtools

from nova_kronos import text


class TestText(testtools.TestCase):

    def test_clip(self):
        self.assertEqual('abcde', text.clip('abcde', 5))
        self.assertEqual('abc... (6 characters)', text.clip('abcdef', 3))

    def test_one_line(self):
        self.assertEqual('a b c', text.one_line('a\n  b\tc', 10))
        # 12 characters: the first 4, once on one line, then the length.
        self.assertEqual('ab c... (12 characters)',
                         text.one_line('ab\n cdefghij', 4))
        # Not only strings: an exception reads as its message.
        self.assertEqual('boom', text.one_line(ValueError('boom'), 10))
