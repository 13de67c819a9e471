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


"""Quoting outside text in messages, bounded.

Values from a policies file, answers from Prometheus and errors from the
Nova API can be arbitrarily long; a message quotes at most a bounded
prefix and says how long the original was.

This module is part of the pure core: it imports nothing.
"""


def clip(text, limit):
    """``text`` cut to ``limit`` characters, saying how long it was.

    :returns: ``text`` itself when short enough, else ``'<first limit
        characters>... (<len> characters)'``.
    """
    if len(text) <= limit:
        return text
    return '%s... (%d characters)' % (text[:limit], len(text))


def one_line(text, limit):
    """``str(text)`` on one line, cut as :func:`clip` cuts.

    Runs of whitespace (newlines included) become one space. Only the first
    ``limit + 1`` characters are split, so a huge text costs no more than
    a short one; the length given is the original's.
    """
    text = str(text)
    line = ' '.join(text[:limit + 1].split())
    if len(text) > limit:
        return '%s... (%d characters)' % (line[:limit], len(text))
    return line
