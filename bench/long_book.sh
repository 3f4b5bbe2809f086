#!/usr/bin/env bash
# A long unpunctuated book through `slcolm extract --documents`, as issue 9's "done when" asks:
# the ChisRE train text with its punctuation removed, three times over (277,020 characters), as
# one BOOK.txt and as 36 chapter files. It prints each run's wall time and peak RSS (GNU time;
# for Ray, the driver's alone), checks that both engines write the same bytes, then kills a run
# of the chapters (SIGKILL, no chance to clean up) and resumes it, for each engine.
#
#   bench/long_book.sh PROGRAM DATA WORK [LOCAL_KILL_S RAY_KILL_S]
#   bench/long_book.sh programs/default ../shared/data/chisre /tmp/book 100 120
set -u
PROGRAM=$1 DATA=$2 WORK=$3 LOCAL_KILL=${4:-100} RAY_KILL=${5:-120}
S=${SLCOLM:-.venv/bin/slcolm}
rm -rf "$WORK" && mkdir -p "$WORK/chapters" "$WORK/out"
python3 - "$DATA" "$WORK" <<'PY'
import json, re, sys
from pathlib import Path
data, work = Path(sys.argv[1]), Path(sys.argv[2])
text = "".join(json.loads((data / "train.json").read_text("utf-8")))
book = re.sub(r"[，。！？；：、「」『』《》〈〉（）\s,.!?;:]", "", text) * 3
(work / "BOOK.txt").write_text(book, "utf-8")
size = -(-len(book) // 36)
for i in range(36):
    (work / "chapters" / f"ch{i:02d}.txt").write_text(book[i * size : (i + 1) * size], "utf-8")
print(f"BOOK.txt: {len(book)} characters, none of them 。！？; 36 chapters of {size}")
PY
timed() {  # NAME COMMAND...: run it, print its summary's last lines, wall time and peak RSS
  local name=$1; shift
  /usr/bin/time -v "$@" 2> "$WORK/out/$name.time" | tail -2
  grep -E "Elapsed|Maximum resident" "$WORK/out/$name.time"
}
echo "== BOOK.txt, local"; timed book-local $S extract --program "$PROGRAM" "$WORK/BOOK.txt" --out "$WORK/out/book-local" --documents
echo "== BOOK.txt, ray"; timed book-ray $S extract --program "$PROGRAM" "$WORK/BOOK.txt" --out "$WORK/out/book-ray" --documents --engine ray --actor-cpus 2
diff -r "$WORK/out/book-local" "$WORK/out/book-ray" > /dev/null && echo "BOOK.txt: both engines wrote the same bytes" || echo "BOOK.txt: the engines DIFFER"
echo "== chapters, local, whole"; timed ch-whole $S extract --program "$PROGRAM" "$WORK/chapters" --out "$WORK/out/ch-whole" --documents
for spec in "local $LOCAL_KILL" "ray $RAY_KILL"; do
  set -- $spec; engine=$1; after=$2
  extra=(); [ "$engine" = ray ] && extra=(--engine ray --actor-cpus 2)
  echo "== chapters, $engine, killed after $after s, then resumed"
  timeout -s KILL "$after" $S extract --program "$PROGRAM" "$WORK/chapters" --out "$WORK/out/ch-$engine" --documents "${extra[@]}" > /dev/null 2>&1
  echo "after the kill: $(cat "$WORK/out/ch-$engine"/*.jsonl 2>/dev/null | wc -l) of 36 chapters written"
  $S extract --program "$PROGRAM" "$WORK/chapters" --out "$WORK/out/ch-$engine" --documents "${extra[@]}" 2>/dev/null | tail -2
  cat "$WORK/out/ch-$engine"/*.jsonl | python3 -c 'import sys, json; ids = [json.loads(l)["id"] for l in sys.stdin]; print(len(ids), "records,", len(set(ids)), "ids")'
  diff <(cat "$WORK/out/ch-whole"/*.jsonl | sort) <(cat "$WORK/out/ch-$engine"/*.jsonl | sort) > /dev/null \
    && echo "the same records as the uninterrupted run" || echo "records DIFFER from the uninterrupted run"
done
