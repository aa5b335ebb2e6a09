#!/usr/bin/env python3
"""The verdict of test/bench/pgbouncer_pool.sh for one workload.

    pool_verdict.py WORKLOAD "POOL ..." "CONFIG:PORT ..." RUNS_FILE

POOL: the pool of each configuration named perfopt*, in their order.

RUNS_FILE has one line per run, "config tps", in the order they ran: every
round runs every configuration once.  Prints the table of medians with
their distribution-free 95% confidence intervals (order statistics k and
n + 1 - k, k from the binomial distribution, as median_ci in bench_lib.sh)
on stderr, and the verdict line on stdout:

- the best pool of the sweep is the one with the highest median;
- each perfopt* pool against it, round by round (the runs of one round ran
  back to back, so the load of the machine weighs on both alike): the
  median of the per-round ratios and its 95% interval;
- tied: the 95% intervals of the two medians overlap (sizes that cannot be
  told apart by these rounds);
- met: the median ratio is 90% or more (the issue's target); short of
  that, whether it is tied.
"""
import math
import sys


def median_ci(values):
    x = sorted(values)
    n = len(x)
    m = (x[(n - 1) // 2] + x[n // 2]) / 2
    k = 0
    while k + 1 <= n and sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n <= 0.025:
        k += 1
    lo, hi = (x[k - 1], x[n - k]) if k >= 1 else (x[0], x[-1])
    return m, lo, hi, k >= 1


def main():
    workload, pools, order, runs_file = sys.argv[1:5]
    names = [c.split(":")[0] for c in order.split()]
    runs = {name: [] for name in names}
    for line in open(runs_file):
        name, tps = line.split()
        runs[name].append(float(tps))
    stats = {name: median_ci(runs[name]) for name in names}
    exact = all(s[3] for s in stats.values())
    print("%-10s %10s %10s %10s" % ("config", "median_tps", "ci95_low", "ci95_high"), file=sys.stderr)
    for name in names:
        m, lo, hi, _ = stats[name]
        print("%-10s %10.0f %10.0f %10.0f" % (name, m, lo, hi), file=sys.stderr)
    sweep = [n for n in names if n.startswith("pool")]
    best = max(sweep, key=lambda n: stats[n][0])

    def overlaps(a, b):
        return stats[a][1] <= stats[b][2] and stats[b][1] <= stats[a][2]

    tied_sizes = " ".join(n[4:] for n in sweep if overlaps(n, best))
    lines = []
    for (name, pool) in zip([n for n in names if n.startswith("perfopt")], pools.split()):
        rounds = min(len(runs[name]), len(runs[best]))
        ratios = [runs[name][i] / runs[best][i] for i in range(rounds) if runs[best][i] > 0]
        r, rlo, rhi, _ = median_ci(ratios)
        tied = overlaps(name, best)
        verdict = ("met (median ratio 90% or more)" if r >= 0.90 else
                   "not met by the median ratio, tied within the noise" if tied else "not met")
        lines.append(
            "%s: %s pool %s, %.0f tps (95%% CI %.0f-%.0f) = %.1f%% of the best sweep pool, per-round ratio "
            "median %.1f%% (95%% CI %.1f-%.1f%%, %d rounds); best %s, %.0f tps (95%% CI %.0f-%.0f); sizes tied "
            "with the best (intervals overlap): %s; %s; target %s; %.2fx direct connections (%.0f tps)%s"
            % (workload, name, pool, stats[name][0], stats[name][1], stats[name][2],
               100 * stats[name][0] / stats[best][0], 100 * r, 100 * rlo, 100 * rhi, len(ratios),
               best[4:], stats[best][0], stats[best][1], stats[best][2], tied_sizes,
               "tied with the best" if tied else "not tied with the best",
               verdict,
               stats[name][0] / stats["direct"][0], stats["direct"][0],
               "" if exact else " (fewer than 6 rounds: the intervals are the min-max, not 95%)"))
    print("\n".join(lines))

main()
