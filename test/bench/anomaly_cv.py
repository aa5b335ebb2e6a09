#!/usr/bin/env python3
"""Leave-one-category-out cross-validation of the anomaly detector's constants.

usage: anomaly_cv.py [--nab NAB_DIR] [--scorer nab_score.py] [--driver PATH]
                     [--only NAME=V,...] [--with NAME=V,...] [--grid NAME=V:V:...,...] [--explain]

Runs the detector core (src/models/anomaly.c, built into test/bench/anomaly_driver.c by
anomaly_nab.sh or by hand: cc -O2 -Isrc test/bench/anomaly_driver.c src/models/anomaly.c -lm)
over every NAB series for every setting of the grid below, scores each category with NAB's
standard profile (nab_score.py), and then, for each of the four labelled categories in turn,
chooses the setting that scores best on the other three plus artificialNoAnomaly and reports
its score on the held-out one.  Prints the per-fold choice, the held-out scores, their mean,
and the setting chosen on all of them (the shipped default).  --with adds settings to every
setting of the grid (a variant of the design, cross-validated the same way); --grid replaces
the values tried for the named constants (a finer grid); --explain, with
--only, prints per category the credit of each window found, the windows missed and the false
reports with their cost (where the score is lost).  NAB_DIR defaults to
../shared/data/nab next to the repository.
"""
import argparse, itertools, json, os, subprocess, sys, tempfile, concurrent.futures as cf

top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LABELLED = ["artificialWithAnomaly", "realTraffic", "realAdExchange", "realTweets"]
NOANOM = "artificialNoAnomaly"

# The fitted constants and the values tried; the shipped defaults are in anomaly.c.
# threshold is the default of perfopt.anomaly_threshold (PERFOPT_ANOMALY_DEFAULT_THRESHOLD)
GRID = {
    "threshold": [2.0, 2.5, 3.0, 3.5, 4.0],
    "tail_extrapolate": [1.5, 2.0, 2.5],
    "far_extrapolate": [0.0, 0.5, 1.0],
}


def run_all(driver, nab, series, params, outdir):
    args = []
    for p, v in params.items():
        args += ["-p", "%s=%g" % (p, v)]
    def one(rel):
        out = os.path.join(outdir, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        subprocess.run([driver] + args + [os.path.join(nab, "data", rel), out], check=True)
    with cf.ThreadPoolExecutor(max_workers=2) as ex:
        list(ex.map(one, series))


def raw_scores(ns, windows, outdir, prof):
    """-> {category: (raw score, number of windows)} at the fixed threshold 0.5"""
    import csv
    res = {}
    for key in sorted(windows):
        with open(os.path.join(outdir, key)) as f:
            rows = list(csv.DictReader(f))
        ts = [ns._ts(r["timestamp"]) for r in rows]
        sc = [float(r["anomaly_score"]) for r in rows]
        pts = ns.sweep(ts, sc, windows[key], key, prof)
        cat = key.split("/")[0]
        raw, nw = res.get(cat, (0.0, 0))
        res[cat] = (raw + ns.score_at(pts, 0.5, prof), nw + len(windows[key]))
    return res


def explain(ns, windows, outdir, prof):
    """Where the points go, per category: windows found (their credits), missed, false reports"""
    import csv
    cats = {}
    for key in sorted(windows):
        with open(os.path.join(outdir, key)) as f:
            rows = list(csv.DictReader(f))
        ts = [ns._ts(r["timestamp"]) for r in rows]
        sc = [float(r["anomaly_score"]) for r in rows]
        parts, fp, nfp = {}, 0.0, 0
        for s, pts, wid in ns.sweep(ts, sc, windows[key], key, prof):
            if wid == "prob":
                continue
            if wid is not None:
                parts.setdefault(wid, None)
                if s >= 0.5 and (parts[wid] is None or pts > parts[wid]):
                    parts[wid] = pts
            elif s >= 0.5:
                fp += pts
                nfp += 1
        c = cats.setdefault(key.split("/")[0], [[], 0, 0.0, 0])
        c[0] += [v for v in parts.values() if v is not None]
        c[1] += sum(1 for v in parts.values() if v is None)
        c[2] += fp
        c[3] += nfp
    for cat, (found, missed, fp, nfp) in sorted(cats.items()):
        print("explain %-22s found %d (credits %s), missed %d, false reports %d costing %.2f" % (
            cat, len(found), " ".join("%.2f" % v for v in sorted(found)), missed, nfp, abs(fp)))


def norm(ns, res, cats, prof):
    raw = sum(res[c][0] for c in cats)
    nw = sum(res[c][1] for c in cats)
    return ns.normalise(raw, nw, prof)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nab", default=os.path.join(top, "..", "shared", "data", "nab"))
    ap.add_argument("--scorer", default=os.path.join(top, "..", "shared", "tools", "nab_score.py"))
    ap.add_argument("--driver", default=None)
    ap.add_argument("--only", default=None, help="one setting, as name=value,name=value")
    ap.add_argument("--explain", action="store_true",
                    help="with --only: per category, the windows found (credits), missed, and the false reports")
    ap.add_argument("--grid", default=None, metavar="NAME=V:V:...,...",
                    help="replace the grid's values of the named constants (to check the choice on a finer grid)")
    ap.add_argument("--with", dest="extra", default=None, metavar="NAME=VALUE,...",
                    help="add these settings to every setting of the grid (to cross-validate a variant)")
    ap.add_argument("--score", default=None, metavar="RESULTS_DIR",
                    help="only score RESULTS_DIR (e.g. detect_anomalies() in SQL) per category")
    ap.add_argument("--same-as", default=None, metavar="RESULTS_DIR",
                    help="also check that the driver's flags with the shipped defaults equal RESULTS_DIR's")
    a = ap.parse_args()
    if not os.path.exists(os.path.join(a.nab, "windows.json")):
        sys.exit("NAB data not found at %s (no windows.json): pass --nab DIR" % a.nab)
    if not os.path.exists(a.scorer):
        sys.exit("scorer not found at %s: pass --scorer PATH" % a.scorer)
    sys.path.insert(0, os.path.dirname(os.path.abspath(a.scorer)))
    import nab_score as ns
    prof = ns.PROFILES["standard"]
    windows = json.load(open(os.path.join(a.nab, "windows.json")))
    series = sorted(windows)
    if a.score:
        res = raw_scores(ns, windows, a.score, prof)
        for c in LABELLED:
            print("category %-22s standard=%.2f (%d windows)" % (c, norm(ns, res, [c], prof), res[c][1]))
        return
    tmp = tempfile.mkdtemp(prefix="anomaly_cv.")
    driver = a.driver
    if driver is None:
        driver = os.path.join(tmp, "anomaly_driver")
        subprocess.run(["cc", "-O2", "-I", os.path.join(top, "src"), "-o", driver,
                        os.path.join(top, "test/bench/anomaly_driver.c"),
                        os.path.join(top, "src/models/anomaly.c"), "-lm"], check=True)
    if a.same_as:
        import csv
        out = os.path.join(tmp, "defaults")
        run_all(driver, a.nab, series, {}, out)
        differ = 0
        for rel in series:
            mine = [r["anomaly_score"] for r in csv.DictReader(open(os.path.join(out, rel)))]
            sql = [str(int(float(r["anomaly_score"]))) for r in csv.DictReader(open(os.path.join(a.same_as, rel)))]
            differ += sum(1 for x, y in zip(mine, sql) if x != y) + abs(len(mine) - len(sql))
        print("standalone core vs detect_anomalies() in SQL, shipped defaults: %d differing points" % differ)
    if a.only:
        grid = [dict((kv.split("=")[0], float(kv.split("=")[1])) for kv in a.only.split(","))]
    else:
        g = dict(GRID)
        for kv in (a.grid.split(",") if a.grid else []):
            g[kv.split("=")[0]] = [float(v) for v in kv.split("=")[1].split(":")]
        names = sorted(g)
        grid = [dict(zip(names, vals)) for vals in itertools.product(*(g[n] for n in names))]
    if a.extra:
        extra = dict((kv.split("=")[0], float(kv.split("=")[1])) for kv in a.extra.split(","))
        grid = [dict(g, **extra) for g in grid]
    results = []
    for i, params in enumerate(grid):
        out = os.path.join(tmp, "r%d" % i)
        run_all(driver, a.nab, series, params, out)
        res = raw_scores(ns, windows, out, prof)
        results.append((params, res))
        if a.explain:
            explain(ns, windows, out, prof)
        print("setting %-50s %s  all=%.2f" % (
            ",".join("%s=%g" % kv for kv in sorted(params.items())),
            " ".join("%s=%.1f" % (c[:8], norm(ns, res, [c], prof)) for c in LABELLED),
            norm(ns, res, LABELLED + [NOANOM], prof)), flush=True)
    held = []
    for c in LABELLED:
        train = [d for d in LABELLED if d != c] + [NOANOM]
        best = max(results, key=lambda r: norm(ns, r[1], train, prof))
        h = norm(ns, best[1], [c], prof)
        held.append(h)
        print("fold %-22s chosen %-45s train=%.2f held-out=%.2f" % (
            c, ",".join("%s=%g" % kv for kv in sorted(best[0].items())),
            norm(ns, best[1], train, prof), h))
    print("LOCO mean (held-out, standard profile): %.2f" % (sum(held) / len(held)))
    best = max(results, key=lambda r: norm(ns, r[1], LABELLED + [NOANOM], prof))
    print("fit on all: %s  standard=%.2f" % (
        ",".join("%s=%g" % kv for kv in sorted(best[0].items())),
        norm(ns, best[1], LABELLED + [NOANOM], prof)))


if __name__ == "__main__":
    main()
