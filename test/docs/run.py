#!/usr/bin/env python3
"""Runs every SQL example of README.md and docs/*.md, as psql does, and
compares what it prints with the output the document shows, like pg_regress.

    test/docs/run.py [--self-test SELFTEST_TREE] TREE [FILE...]

With --self-test, the harness first runs on its own test pages (whose
results SELFTEST_TREE/expected lists), so that it is seen to fail what it
must fail.  TREE is the top of perfopt's tree; FILEs (paths relative to TREE) narrow the
run to those documents.  psql must reach the sample database through the
usual PG* environment variables (test/docs/docs_test.sh sets them).

The conventions (docs/testing.md#docs-as-tests has them for writers):

- a fenced block whose info string is `sql` is an example; it is run;
- a fenced block with no info string, or `text`, that follows an example with
  only blank lines and docs-test comments between, is that example's output;
  what psql prints must match it, cell by cell (the padding of a column does
  not count, nor trailing blanks);
- an example with no output block passes when it runs without an ERROR;
- an example must end its last statement with a semicolon;
- comments `<!-- docs-test: DIRECTIVE -->` between the prose and an example,
  or between an example and its output, direct the test of that example:
    skip REASON             not run (a signature, a sketch, needs a host ...)
    known-failing REASON    run and compared; its failure does not fail the
                            run, but its passing does (remove the marker)
    mask COL[, COL...]      the values of these result columns are not
                            compared (times, sizes, durations)
    mask /REGEX/            neither is what this Python regex matches
    unordered               the rows are compared in any order
    before PSQL-INPUT       run just before the example, unseen: a psql
                            meta-command (\\x on, \\pset format wrapped) or SQL
- a document's examples run in one psql session, in the order they appear;
  README.md runs first, then docs/*.md in the order of the README's
  "Documentation" list (a document missing from the list is an error).

Each example prints one line, "ok", "FAILED", "skipped: REASON" or "known
failing: REASON", the diffs of what failed follow, and the last line is
"docs: N passed, N failed, N skipped, N known failing".  The outputs psql
printed are left in $DOCS_TEST_RESULTS (default: no copy) as FILE.out.
"""

import difflib
import os
import re
import subprocess
import sys
import tempfile

FENCE = re.compile(r'^( *)(```+|~~~+)\s*([A-Za-z0-9_+-]*)\s*$')
MARKER = re.compile(r'^\s*<!--\s*docs-test:\s*(.*?)\s*-->\s*$')
PSQL_PREFIX = re.compile(r'^psql:[^\s:]+:\d+: ')
ECHO = '@@docs-test example %d@@'
ECHO_RE = re.compile(r'^@@docs-test example (\d+)@@$')
RECORD_RE = re.compile(r'^-\[ RECORD \d+ \]-*$')
RULE_RE = re.compile(r'^-+(\+-+)*$')
ERROR_RE = re.compile(r'^(ERROR|FATAL|PANIC):|server closed the connection|connection to server .* failed')
DIRECTIVES = ('skip', 'known-failing', 'mask', 'unordered', 'before')
PSQL_TIMEOUT = int(os.environ.get('DOCS_TEST_TIMEOUT', '600'))


class Example:
    def __init__(self, path, line, sql):
        self.path = path
        self.line = line            # line of the ```sql fence, 1-based
        self.sql = sql
        self.expected = None        # list of lines, or None
        self.expected_line = None
        self.skip = None
        self.known_failing = None
        self.mask_columns = set()
        self.mask_regexes = []
        self.unordered = False
        self.before = []

    def where(self):
        return '%s:%d' % (self.path, self.line)

    def direct(self, text, lineno):
        word, _, rest = text.partition(' ')
        rest = rest.strip()
        if word not in DIRECTIVES:
            raise SyntaxError('%s:%d: unknown docs-test directive "%s" (one of %s)'
                              % (self.path, lineno, word, ', '.join(DIRECTIVES)))
        if word in ('skip', 'known-failing') and not rest:
            raise SyntaxError('%s:%d: "%s" needs a reason' % (self.path, lineno, word))
        if word == 'skip':
            self.skip = rest
        elif word == 'known-failing':
            self.known_failing = rest
        elif word == 'unordered':
            self.unordered = True
        elif word == 'before':
            self.before.append(rest)
        elif rest.startswith('/') and rest.endswith('/') and len(rest) > 2:
            self.mask_regexes.append(re.compile(rest[1:-1]))
        else:
            self.mask_columns.update(c.strip() for c in rest.split(',') if c.strip())


def parse(top, path):
    """The examples of one markdown file, with their outputs and markers."""
    lines = open(os.path.join(top, path), encoding='utf-8').read().split('\n')
    examples = []
    pending = []            # markers seen since the last block or prose
    last = None             # the example an output block may still follow
    i = 0
    while i < len(lines):
        line = lines[i]
        m = MARKER.match(line)
        if m:
            pending.append((m.group(1), i + 1))
            i += 1
            continue
        f = FENCE.match(line)
        if not f:
            if line.strip():
                if pending and last is None:
                    raise SyntaxError('%s:%d: a docs-test marker is followed by prose, not by an example'
                                      % (path, pending[0][1]))
                pending = []
                last = None
            i += 1
            continue
        # a block in a list item is indented; its lines lose that indent
        indent, fence, lang = len(f.group(1)), f.group(2), f.group(3)
        start = i
        i += 1
        body = []
        while i < len(lines) and not lines[i].strip().startswith(fence[0] * len(fence)):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == '' else lines[i])
            i += 1
        i += 1
        if lang == 'sql':
            ex = Example(path, start + 1, '\n'.join(body))
            for text, lineno in pending:
                ex.direct(text, lineno)
            pending = []
            examples.append(ex)
            last = ex
        elif lang in ('', 'text') and last is not None and last.expected is None:
            for text, lineno in pending:
                last.direct(text, lineno)
            pending = []
            last.expected = body
            last.expected_line = start + 1
            last = None
        else:
            if pending:
                raise SyntaxError('%s:%d: a docs-test marker is followed by a %s block, not by an example'
                                  % (path, pending[0][1], lang or 'plain'))
            last = None
    return examples


def documents(top, only):
    """README.md, then docs/*.md in the order of the README's Documentation list."""
    readme = open(os.path.join(top, 'README.md'), encoding='utf-8').read()
    m = re.search(r'^## Documentation\n(.*?)(?=^## |\Z)', readme, re.M | re.S)
    if not m:
        raise SyntaxError('README.md has no "## Documentation" section to order docs/*.md by')
    order = ['README.md']
    for link in re.findall(r'\]\((docs/[^)#]+\.md)\)', m.group(1)):
        if link not in order:
            order.append(link)
    present = sorted('docs/' + f for f in os.listdir(os.path.join(top, 'docs')) if f.endswith('.md'))
    missing = [d for d in present if d not in order]
    if missing:
        raise SyntaxError('not in the README\'s Documentation list, so in no reading order: ' + ', '.join(missing))
    order = [d for d in order if os.path.exists(os.path.join(top, d))]
    if only:
        order = [d for d in order if d in only]
    return order


def run_document(examples):
    """Runs a document's examples in one psql session; the output of each."""
    script = ['\\pset footer off']
    for n, ex in enumerate(examples):
        if ex.skip:
            continue
        script.append('\\echo ' + ECHO % n)
        script.extend(ex.before)
        # an example must end its statements; one that does not fails here
        # rather than running with the next
        script.append(ex.sql + '\n;')
        # what an example set for its display is its own
        script.extend(['\\pset expanded off', '\\pset format aligned', '\\pset columns 0'])
    script.append('\\echo ' + ECHO % len(examples))
    with tempfile.NamedTemporaryFile('w', suffix='.sql', delete=False) as f:
        f.write('\n'.join(script) + '\n')
        name = f.name
    os.chmod(name, 0o644)
    try:
        proc = subprocess.run(['psql', '-X', '-q', '-f', name], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=PSQL_TIMEOUT, env=dict(os.environ, PAGER=''))
        out = proc.stdout.decode('utf-8', 'replace')
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b'').decode('utf-8', 'replace') + '\nERROR: docs test: psql did not finish in %d s\n' \
            % PSQL_TIMEOUT
    finally:
        os.unlink(name)
    outputs = {}
    current = None
    preamble = []
    for line in out.split('\n'):
        m = ECHO_RE.match(line)
        if m:
            current = int(m.group(1))
            outputs[current] = []
        elif current is None:
            preamble.append(line)
        else:
            outputs[current].append(PSQL_PREFIX.sub('', line))
    for lines in outputs.values():
        while lines and not lines[-1].strip():
            lines.pop()
    return outputs, [l for l in preamble if l.strip()], out


def cells(line):
    """A table line's cells, without padding (also before psql's + that marks
    a value continued on the next line)."""
    return [re.sub(r'\s+\+$', '+', c.strip()) for c in line.split('|')]


def normalize(lines, ex):
    """The lines to compare: padding, rules and masked values taken out."""
    result = []
    header = None           # the columns of the aligned table being read
    record = False          # inside an expanded record
    key = None              # the column of the expanded record's line
    for i, raw in enumerate(lines):
        line = raw.rstrip()
        for rx in ex.mask_regexes:
            line = rx.sub('#', line)
        if RECORD_RE.match(line):
            result.append(line.rstrip('-'))
            header, record, key = None, True, None
        elif RULE_RE.match(line):
            result.append('---')
        elif not line.strip():
            header, record, key = None, False, None
            result.append('')
        elif i + 1 < len(lines) and RULE_RE.match(lines[i + 1].rstrip()):
            header = cells(line)
            result.append(' | '.join(header))
        elif header is not None:
            parts = cells(line)
            result.append(' | '.join('#' if p and j < len(header) and header[j] in ex.mask_columns else p
                                     for j, p in enumerate(parts)))
        elif record and '|' in line:
            name, _, value = line.partition('|')
            if name.strip():
                key = name.strip()
            value = value.strip()
            if key in ex.mask_columns and value:
                value = '#'
            result.append(name.strip() + ' | ' + value)
        else:
            result.append(line.strip())
    if ex.unordered:
        result = _sorted_rows(result)
    while result and result[-1] == '':
        result.pop()
    return result


def _sorted_rows(result):
    """The rows between rules and blank lines sorted, the rest in place."""
    out = []
    block = []
    for line in result:
        if line in ('', '---') or line.startswith('-[ RECORD'):
            out.extend(sorted(block))
            block = []
            out.append(line)
        else:
            block.append(line)
    out.extend(sorted(block))
    return out


def ends_statement(sql):
    """Whether an example's last line ends a statement (or is a psql
    meta-command), as a reader's psql needs before it runs anything."""
    lines = [re.sub(r'\s*--[^\'"]*$', '', l).rstrip() for l in sql.split('\n')]
    lines = [l for l in lines if l.strip()]
    return not lines or lines[-1].endswith(';') or lines[-1].lstrip().startswith('\\')


def run_tree(top, only):
    """Runs the pages of a tree: [(where, status, note)] and the diffs."""
    results = []
    diffs = []
    results_dir = os.environ.get('DOCS_TEST_RESULTS')
    docs = documents(top, only)
    parsed = [(d, parse(top, d)) for d in docs]
    for doc, examples in parsed:
        if not examples:
            continue
        outputs, preamble, raw = run_document(examples)
        if results_dir:
            with open(os.path.join(results_dir, doc.replace('/', '_') + '.out'), 'w') as f:
                f.write(raw)
        for n, ex in enumerate(examples):
            if ex.skip:
                results.append((ex.where(), 'skipped', ex.skip))
                continue
            actual = outputs.get(n)
            if actual is None:
                actual = ['(docs test: no output: psql stopped before this example)'] + preamble
            if not ends_statement(ex.sql):
                ok = False
                diff = ['%s: the example does not end its last statement with ";"' % ex.where()]
            elif ex.expected is None:
                bad = [l for l in actual if ERROR_RE.search(l)]
                ok = not bad and n in outputs
                diff = [] if ok else ['%s: the example failed:' % ex.where()] + actual
            else:
                ok = normalize(ex.expected, ex) == normalize(actual, ex)
                diff = [] if ok else list(difflib.unified_diff(
                    ex.expected, actual, '%s:%d (the document)' % (doc, ex.expected_line),
                    '%s (psql)' % ex.where(), lineterm=''))
            if ex.known_failing:
                if ok:
                    results.append((ex.where(), 'FAILED',
                                    'passes now, remove its known-failing marker (%s)' % ex.known_failing))
                else:
                    results.append((ex.where(), 'known failing', ex.known_failing))
            elif ok:
                results.append((ex.where(), 'ok', None))
            else:
                results.append((ex.where(), 'FAILED', None))
                diffs.append(diff)
    return results, diffs


def self_test(top):
    """Runs the harness on its own test pages; the statuses must be the ones
    their file `expected` lists.  A message when they are not, else None."""
    want = [l.split(None, 1) for l in open(os.path.join(top, 'expected')).read().split('\n') if l.strip()]
    saved = os.environ.pop('DOCS_TEST_RESULTS', None)
    try:
        results, _ = run_tree(top, set())
    finally:
        if saved is not None:
            os.environ['DOCS_TEST_RESULTS'] = saved
    got = [[where, status] for where, status, _ in results]
    if got == want:
        return None
    return '\n'.join(difflib.unified_diff(['%s %s' % tuple(w) for w in want], ['%s %s' % tuple(g) for g in got],
                                          'expected', 'found', lineterm=''))


def main():
    args = sys.argv[1:]
    selftest = None
    if len(args) >= 2 and args[0] == '--self-test':
        selftest, args = args[1], args[2:]
    if not args:
        sys.exit(__doc__)
    top = args[0]
    only = set(args[1:])
    counts = {'passed': 0, 'failed': 0, 'skipped': 0, 'known failing': 0}
    diffs = []
    if selftest:
        try:
            problem = self_test(selftest)
        except (SyntaxError, OSError) as e:
            problem = str(e)
        print('%-32s ... %s' % ('docs harness self-test', 'FAILED' if problem else 'ok'))
        counts['failed' if problem else 'passed'] += 1
        if problem:
            diffs.append(['the docs harness did not find what test/docs/selftest/expected says:', problem])
    try:
        results, tree_diffs = run_tree(top, only)
    except (SyntaxError, OSError) as e:
        results, tree_diffs = [('docs test', 'FAILED', str(e))], []
    diffs.extend(tree_diffs)
    for where, status, note in results:
        print('%-32s ... %s%s' % (where, status, ': ' + note if note else ''))
        counts[{'ok': 'passed', 'FAILED': 'failed'}.get(status, status)] += 1
    for d in diffs:
        print()
        print('\n'.join(d))
    if diffs:
        print()
    print('docs: %(passed)d passed, %(failed)d failed, %(skipped)d skipped, %(known failing)d known failing'
          % counts)
    return 1 if counts['failed'] else 0


if __name__ == '__main__':
    sys.exit(main())
