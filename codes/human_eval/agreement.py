"""Statistics of pairwise judgments: the two-sided sign test, Fleiss' kappa and Krippendorff's alpha (nominal)."""
from collections import Counter
from math import comb


def sign_test(wins, losses):
    """Two-sided exact sign test (ties dropped): P(a split at least this uneven | each side wins with p = 1/2)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n)


def fleiss_kappa(units):
    """Fleiss' kappa over units (lists of category labels, one per rater); units with < 2 ratings are skipped.

    Raters per unit may differ: P_i = sum_j n_ij (n_ij - 1) / (n_i (n_i - 1)), p_j from all ratings (the usual
    generalisation). None when no unit has two ratings or when every rating is the same category (undefined)."""
    units = [u for u in units if len(u) >= 2]
    if not units:
        return None
    agreement = [sum(c * (c - 1) for c in Counter(u).values()) / (len(u) * (len(u) - 1)) for u in units]
    totals = Counter(label for u in units for label in u)
    n = sum(totals.values())
    expected = sum((c / n) ** 2 for c in totals.values())
    if expected == 1:
        return None
    return (sum(agreement) / len(units) - expected) / (1 - expected)


def krippendorff_alpha(units):
    """Krippendorff's alpha, nominal metric, from the coincidence matrix; units with < 2 values are not pairable."""
    coincidences = Counter()
    for u in (u for u in units if len(u) >= 2):
        for i, a in enumerate(u):
            for j, b in enumerate(u):
                if i != j:
                    coincidences[a, b] += 1 / (len(u) - 1)
    totals = Counter()
    for (a, _), value in coincidences.items():
        totals[a] += value
    n = sum(totals.values())
    expected = n * n - sum(v * v for v in totals.values())  # sum over c != k of n_c n_k
    if n == 0 or expected == 0:
        return None
    observed = sum(v for (a, b), v in coincidences.items() if a != b)
    return 1 - (n - 1) * observed / expected


def cohen_kappa(pairs):
    """Cohen's kappa of two raters over (label_1, label_2) pairs: (p_o - p_e) / (1 - p_e), p_e from each rater's own
    label shares. None when there are no pairs or p_e = 1 (both raters always use one and the same label)."""
    if not pairs:
        return None
    n = len(pairs)
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(first[label] * second[label] for label in first) / n ** 2
    if expected == 1:
        return None
    return (percent_agreement(pairs) - expected) / (1 - expected)


def percent_agreement(pairs):
    """Share of pairs with the same label (None without pairs)."""
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else None


def wilson_interval(successes, n, z=1.959963984540054):
    """The Wilson score interval [low, high] of a proportion successes / n (95% for the default z); successes may
    be fractional (a tie counted as half). None without observations."""
    if n == 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    return [max(0.0, centre - half), min(1.0, centre + half)]
