#!/usr/bin/env bash
# build-corpus.sh - build a multi-domain text corpus from the King James Bible and
# Debian packages, reproducibly: one plain UTF-8 file per domain, a held-out part of
# each for `smoe routes`, train.txt for `smoe tokenizer-train` / `smoe train`, and a
# MANIFEST with the package versions and every file's size, lines and sha256.
#
# Same inputs (the KJV file, the package versions in MANIFEST, --max-bytes) give the
# same bytes: files are read in LC_ALL=C order, the text is normalised by fixed rules,
# and nothing depends on time, locale, paths or the number of cores. Domains, sources,
# licences and the rules: docs/corpus.md.
#
# Not done here: downloading anything but Debian packages, deduplication across
# domains, any tokenization.
set -euo pipefail
export LC_ALL=C

usage() {
    cat <<'EOF'
usage: scripts/build-corpus.sh [--out DIR] [--kjv FILE] [--max-bytes N] [--no-install]

Build a multi-domain corpus (docs/corpus.md) into DIR:

  DIR/<domain>.txt          training part of each domain (one plain UTF-8 text file)
  DIR/heldout/<domain>.txt  held-out part (5 % of each domain) for `smoe routes`
  DIR/train.txt             the training parts of all domains, blank lines dropped
  DIR/MANIFEST              package versions, options, and size/lines/sha256 of each file

Domains: kjv (King James Bible), code (C headers of libc6-dev and linux-libc-dev),
python (the Python 3 standard library), man (manual pages of manpages and
manpages-dev, rendered to text), fortunes (fortunes-min and fortunes), dict (WordNet
definitions, wordnet-base), licenses (/usr/share/common-licenses, base-files).

options:
  --out DIR        output directory (default: corpus/ in the repository; files
                   written over, others left alone)
  --kjv FILE       the King James Bible, one verse per line (default:
                   ../shared/data/kjv.txt next to the repository)
  --max-bytes N    cap on each domain, training + held-out (default 4194304 = 4 MiB,
                   which keeps the 4.1 MB KJV whole); larger domains keep an evenly
                   spread selection of their documents
  --no-install     do not run apt-get; fail if a package is missing
  -h, --help       show this help

Missing Debian packages are installed with apt-get when run as root; otherwise the
script names them and exits 1. Running it twice gives byte-identical files.
EOF
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
out=$repo/corpus
kjv=$repo/../shared/data/kjv.txt
max_bytes=4194304
install=1
while [ $# -gt 0 ]; do
    case $1 in
    --out) [ $# -ge 2 ] || { usage >&2; exit 2; }; out=$2; shift 2 ;;
    --kjv) [ $# -ge 2 ] || { usage >&2; exit 2; }; kjv=$2; shift 2 ;;
    --max-bytes) [ $# -ge 2 ] || { usage >&2; exit 2; }; max_bytes=$2; shift 2 ;;
    --no-install) install=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "build-corpus: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
if ! [[ $max_bytes =~ ^[0-9]+$ ]] || [ "$max_bytes" -lt 1000 ] || [ "$max_bytes" -gt 1000000000 ]; then
    echo "build-corpus: --max-bytes must be an integer from 1000 to 1000000000" >&2
    exit 2
fi
if [ ! -f "$kjv" ]; then
    echo "build-corpus: no KJV text at '$kjv' (give your copy with --kjv FILE)" >&2
    exit 1
fi

# ---- packages ----------------------------------------------------------------------
# python3 brings libpython3.X-stdlib (the python domain) and runs the text processing.
pkgs=(base-files python3 groff-base libc6-dev linux-libc-dev manpages manpages-dev
    fortunes-min fortunes wordnet-base)
installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }
missing=()
for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$install" -eq 1 ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "build-corpus: installing ${missing[*]}" >&2
        if ! { apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
            >/dev/null 2>&1; then
            echo "build-corpus: missing Debian packages: ${missing[*]} (apt-get install failed)" >&2
            exit 1
        fi
    else
        echo "build-corpus: missing Debian packages: ${missing[*]}" >&2
        echo "build-corpus: install them first: apt-get install --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
fi
pyver=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
pkgs+=("libpython$pyver-stdlib" "libpython$pyver-minimal" "python$pyver-minimal")
for p in "${pkgs[@]}"; do
    installed "$p" || { echo "build-corpus: package $p is not installed" >&2; exit 1; }
done

# ---- source file lists (sorted in the Python step) ------------------------------------
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' "$kjv" >"$tmp/kjv.list"
dpkg -L libc6-dev linux-libc-dev | grep -E '^/usr/include/.*\.h$' >"$tmp/code.list"
# pydoc_data/topics.py is the reference manual as one 750 kB string: prose, not code
dpkg -L "libpython$pyver-stdlib" "libpython$pyver-minimal" |
    grep -E "^/usr/lib/python$pyver/.*\.py\$" | grep -vE '/(site|dist)-packages/|/pydoc_data/' >"$tmp/python.list"
dpkg -L manpages manpages-dev | grep -E '^/usr/share/man/man[1-8]/[^/]+\.gz$' >"$tmp/man.list"
# ascii-art is pictures, not language: left out
dpkg -L fortunes-min fortunes | grep -E '^/usr/share/games/fortunes/[^/]+$' |
    grep -vE '\.(dat|u8)$|/ascii-art$' >"$tmp/fortunes.list"
dpkg -L wordnet-base | grep -E '^/usr/share/wordnet/data\.(adj|adv|noun|verb)$' >"$tmp/dict.list"
dpkg -L base-files | grep -E '^/usr/share/common-licenses/[^/]+$' >"$tmp/licenses.list"
if [ "$(grep -c . "$tmp/man.list")" -lt 100 ] || [ ! -e "$(head -n 1 "$tmp/man.list")" ]; then
    echo "build-corpus: the manual pages of manpages are not on disk (a dpkg path-exclude" \
        "for /usr/share/man in /etc/dpkg/dpkg.cfg.d/?)" >&2
    exit 1
fi

# ---- text: extract, normalise, cap, split --------------------------------------------
domains=(kjv code python man fortunes dict licenses)
mkdir -p "$out/heldout"
python3 -I -S - "$tmp" "$out" "$max_bytes" "${domains[@]}" <<'PY'
# Extract each domain's documents, normalise them, keep an evenly spread selection of
# at most MAX bytes, split off 5 % as held-out, write OUT/<d>.txt and OUT/heldout/<d>.txt.
import gzip, os, re, subprocess, sys

tmp, out, cap, domains = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]

# C0 and C1 control characters except TAB and LF, DEL, and the byte-order mark
CTRL = re.compile('[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff]')

def normalise(data):
    """bytes -> list of lines: invalid UTF-8 dropped, CRLF/CR -> LF, control characters
    dropped, trailing spaces and tabs stripped, runs of blank lines squeezed to one,
    blank lines at both ends dropped."""
    s = data.decode('utf-8', 'ignore').replace('\r\n', '\n').replace('\r', '\n')
    s = CTRL.sub('', s)
    lines, blank = [], True
    for line in s.split('\n'):
        line = line.rstrip(' \t')
        if not line:
            if not blank:
                lines.append('')
            blank = True
        else:
            lines.append(line)
            blank = False
    while lines and not lines[-1]:
        lines.pop()
    return lines

def paths(domain):
    with open(os.path.join(tmp, domain + '.list'), 'rb') as f:
        ps = sorted(set(p for p in f.read().split(b'\n') if p))
    # regular files only: a symlink would repeat a file (fortunes.u8, GPL -> GPL-3)
    return [p for p in ps if os.path.isfile(p) and not os.path.islink(p)]

def read(p):
    with open(p, 'rb') as f:
        return f.read()

def docs_kjv():
    lines = normalise(read(paths('kjv')[0]))
    lines = [l for l in lines if l]
    for i in range(0, len(lines), 30):  # 30 verses, about a chapter
        yield lines[i:i + 30]

def docs_files(domain):
    for p in paths(domain):
        yield normalise(read(p))

def docs_fortunes():
    for p in paths('fortunes'):
        fortune = []
        for line in read(p).split(b'\n') + [b'%']:
            if line.rstrip(b'\r') == b'%':
                yield normalise(b'\n'.join(fortune))
                fortune = []
            else:
                fortune.append(line)

POS = {b'n': 'noun', b'v': 'verb', b'a': 'adjective', b's': 'adjective', b'r': 'adverb'}

def docs_dict():
    # WordNet data.* lines (wndb(5)): offset lex_filenum ss_type w_cnt(hex) word lex_id
    # ... | gloss; lines starting with two spaces are the licence header.
    for p in paths('dict'):
        for rec in read(p).split(b'\n'):
            if not rec or rec.startswith(b'  ') or b' | ' not in rec:
                continue
            head, gloss = rec.split(b' | ', 1)
            f = head.split(b' ')
            n = int(f[3], 16)
            words = [re.sub(rb'\([a-z]+\)$', b'', w).replace(b'_', b' ') for w in f[4:4 + 2 * n:2]]
            yield normalise(b', '.join(words) + b' (' + POS[f[2]].encode() + b'): ' + gloss.strip())

MARK = '@@SMOE-PAGE-END@@'
HEADER = re.compile(r'^(\S+\(\S+\)) .* \1$')

def docs_man():
    # All pages through one groff run (one run per page is ten times slower), each
    # followed by a marker line; redirections (.so) and symlinks are left out.
    # Ragged right, no justification spaces: `ad` is renamed and redefined so that no
    # page can switch adjusting back on (for itself or the pages after it).
    src = [b'.rn ad smoe@ad\n.de ad\n.smoe@ad l\n..\n.ad l\n']
    for p in paths('man'):
        with gzip.open(p, 'rb') as f:
            page = f.read()
        first = next((l for l in page.split(b'\n') if l.strip() and not l.startswith(b'.\\"')), b'')
        if first.startswith(b'.so '):
            continue
        src += [page, b'\n.br\n.in 0\n.ti 0\n\\&' + MARK.encode() + b'\n.br\n']
    env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'LC_ALL': 'C'}
    r = subprocess.run(['groff', '-K', 'utf8', '-t', '-man', '-Tutf8', '-rLL=78n', '-rLT=78n',
                        '-rHY=0', '-P-cbu'], input=b''.join(src), stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, env=env, check=True)
    pages = r.stdout.split(MARK.encode())[:-1]  # after the last marker: the final footer
    for page in pages:
        lines = normalise(page)
        i = next((i for i, l in enumerate(lines) if l), None)
        if i is not None and HEADER.match(lines[i]):  # "printf(3)  Library Functions Manual  printf(3)"
            del lines[i]
        # the standard 7-column indent of the body, removed; deeper ones kept relative
        lines = [l[7:] if l.startswith('       ') else l for l in lines]
        while lines and not lines[0]:
            del lines[0]
        yield lines

# domain -> (documents, blank line between documents)
SOURCES = {
    'kjv': (docs_kjv, False),
    'code': (lambda: docs_files('code'), True),
    'python': (lambda: docs_files('python'), True),
    'man': (docs_man, True),
    'fortunes': (docs_fortunes, True),
    'dict': (docs_dict, False),
    'licenses': (lambda: docs_files('licenses'), True),
}

def size(lines):
    return sum(len(l.encode()) + 1 for l in lines)

def squeeze(lines):
    res = []
    for l in lines:
        if l or (res and res[-1]):
            res.append(l)
    while res and not res[-1]:
        res.pop()
    return res

def write(path, lines):
    with open(path, 'wb') as f:
        f.write(''.join(l + '\n' for l in lines).encode())

for d in domains:
    gen, sep = SOURCES[d]
    docs = [(['', *doc] if sep else doc) for doc in gen() if doc]
    if not docs:
        sys.exit('build-corpus: domain %s has no text' % d)
    sizes = [size(doc) for doc in docs]
    total = sum(sizes)
    n_docs = len(docs)
    # Over the cap: keep m documents at evenly spaced indices, j * N // m for j < m, with
    # the largest m (binary search) whose bytes fit: an even spread over the domain that
    # favours neither small nor large documents.
    if total > cap:
        N = len(docs)
        def pick(m):
            return [(j * N) // m for j in range(m)]
        lo, hi = 0, N
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if sum(sizes[i] for i in pick(mid)) <= cap:
                lo = mid
            else:
                hi = mid
        if lo:
            docs = [docs[i] for i in pick(lo)]
        else:  # every document is larger than the cap: the head of the first one
            first, n = [], 0
            for l in docs[0]:
                n += len(l.encode()) + 1
                if n > cap:
                    break
                first.append(l)
            docs = [first]
    sys.stderr.write('%-9s %7d of %7d documents, %9d of %9d bytes\n'
                     % (d, len(docs), n_docs, sum(size(doc) for doc in docs), total))
    # Held-out: cut the domain into 100 equal byte ranges and hold out those whose number
    # is 19, 39, 59, 79 or 99 (5 %, five passages spread over the domain). A document
    # goes by where it starts; one larger than a range, line by line.
    total = sum(size(doc) for doc in docs)
    train, held = [], []
    o = 0
    def is_held(at):
        return (at * 100 // total) % 20 == 19
    for doc in docs:
        n = size(doc)
        if n * 100 <= total:
            (held if is_held(o) else train).extend(doc)
            o += n
        else:
            for l in doc:
                (held if is_held(o) else train).append(l)
                o += len(l.encode()) + 1
    write(os.path.join(out, d + '.txt'), squeeze(train))
    write(os.path.join(out, 'heldout', d + '.txt'), squeeze(held))
PY

# the training parts in domain order, one line a sample (smoe ignores blank lines)
for d in "${domains[@]}"; do grep -v '^$' "$out/$d.txt" || true; done >"$out/train.txt"

# ---- MANIFEST ------------------------------------------------------------------------
{
    echo "# smoe corpus: scripts/build-corpus.sh (docs/corpus.md). One line per item:"
    echo "# option NAME VALUE | input NAME SHA256 | package NAME:ARCH VERSION | file PATH BYTES LINES SHA256"
    echo "option max-bytes $max_bytes"
    echo "option heldout 5%"
    echo "option domains ${domains[*]}"
    echo "input build-corpus.sh $(sha256sum <"$here/build-corpus.sh" | cut -d' ' -f1)"
    echo "input kjv $(sha256sum <"$kjv" | cut -d' ' -f1)"
    for p in $(printf '%s\n' "${pkgs[@]}" | sort -u); do
        echo "package $(dpkg-query -W -f='${Package}:${Architecture} ${Version}' "$p")"
    done
    for f in $(for d in "${domains[@]}"; do echo "$d.txt"; echo "heldout/$d.txt"; done) train.txt; do
        echo "file $f $(wc -c <"$out/$f") $(wc -l <"$out/$f") $(sha256sum <"$out/$f" | cut -d' ' -f1)"
    done
} >"$out/MANIFEST"
awk '$1 == "file" { printf "%-22s %10d bytes %8d lines\n", $2, $3, $4 }' "$out/MANIFEST" >&2
