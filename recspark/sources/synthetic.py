"""Generator of UCSD Goodreads Book Graph files with realistic distributions and planted taste structure.

``recspark generate --scale S --seed N --out DIR`` writes, byte-for-byte in the real formats
(see docs/formats.md and ../shared/goodreads-formats.md):

* ``goodreads_interactions.csv``, ``user_id_map.csv``, ``book_id_map.csv``
* ``goodreads_interactions_dedup.json.gz`` (the same shelves, hashed user ids, Goodreads book ids, dates)
* ``goodreads_books.json.gz``, ``goodreads_book_authors.json.gz``, ``goodreads_book_works.json.gz``,
  ``goodreads_book_genres_initial.json.gz``
* with ``subsets=True`` also the genre subsets ``goodreads_interactions_<genre>.json.gz`` and
  ``goodreads_books_<genre>.json.gz``.

Scale 1.0 is the real dataset: 228,648,342 interactions, 876,145 users, 2,360,655 books, 1,521,962 works,
829,529 authors; everything scales linearly with S.

The model (planted structure)
-----------------------------
* **Catalogue.** ``T`` topics (``T = clamp(n_books / 200, 10, 400)``), each belonging to one of the 10 UCSD genres
  (with the real genre mix: fiction, fantasy, romance largest; poetry, comics smallest). Each author writes in one
  topic; every author has at least one work, further works go to authors by a Zipf law (prolific authors);
  every work has one book (edition), further editions go to works by a Zipf law. Runs of an author's works form
  series. A book inherits topic and genre from its author.
* **Popularity.** Each work has a weight ``w = rank^-1`` over a random permutation (Zipf); its first edition
  carries it and its later editions share a quarter of it, so most readers shelve the edition everybody
  shelves, as on Goodreads. Book popularity is long-tailed: the top 1% of books hold 14% of the shelves at scale
  0.01 and 19% at 0.03 (10x and more their fair share; at scale 0.002 the catalogue is too small for a head:
  8%). ``tests/test_synthetic.py::test_realistic_shape_at_scale_0_01`` checks the shape.
* **Users.** Activity ``n_u`` is log-normal (sigma 1.25) rescaled so the total matches the scale (capped at 40%
  of the catalogue), hence right-skewed user activity: mean 261, median 120, the most active user 66x the median
  at scale 0.01. Each user has a taste: a sparse Dirichlet mixture (concentration 0.05) over ``T`` topics, and
  three favourite authors drawn from their top topics.
* **Shelving.** A reader shelves one edition of a work. Each shelved book is drawn without replacement from one
  of three sources:
  taste (p=0.82: topic from the user's mixture, then a book of that topic by weight), favourite author
  (p=0.13: a book of one of the user's favourite authors by weight), or global popularity (p=0.05).
  A collaborative model can recover tastes and authors; popularity explains only the global draws and the
  popularity of books within each topic.
* **Flags.** read with p=0.49 overall, but books differ in how often their shelvers have read them (a classic
  is mostly read, a new release mostly waiting on a to-read shelf): each work shifts the read draw on the logit
  scale by a normal amount (sd ``READ_SD``, its own random stream), so the logit of the read share per book has
  about that spread; rated with p=0.92 if read, 0.0127 if not (overall 0.457);
  reviewed with p=0.15 if rated, 0.0042 if not (overall 0.071) -- the real shares.
  Ratings follow the real mix (5: 0.339, 4: 0.359, 3: 0.223, 2: 0.059, 1: 0.020), tilted up for taste and
  author draws and down for popularity draws, so ratings carry the taste signal too. Books differ in how much
  their readers like them: each work shifts its rating draws on the logit scale by a normal amount (sd
  ``QUALITY_SD``), so the share of 4-5 stars per book spans 0.53-0.86 from the 5th to the 95th percentile at scale
  0.01 (books with 500+ ratings; goodbooks-10k's real histograms: 0.54-0.86), the overall mix unchanged.
* **Time.** Each user joins between 2007 and 2017; ``date_added`` falls between joining and 2017-11-01, and the
  user's rows are written newest first; ``date_updated``, ``read_at`` and ``started_at`` follow ``date_added``.
* **Metadata carries the same signal.** Books' ``popular_shelves`` name their genre and topic (e.g. ``dragons``),
  descriptions and titles use the topic's vocabulary, ``goodreads_book_genres_initial`` counts follow the genre,
  and counts/ratings in books, works and authors are aggregated from the generated interactions.

Determinism and memory: one ``numpy.random.Generator`` per fixed-size chunk of users, seeded from
``(seed, chunk)``, so output depends only on ``(scale, seed)``. Users are streamed chunk by chunk; per-book
accumulators are the only state that grows with the catalogue (O(books)).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

REAL_INTERACTIONS = 228_648_342
REAL_USERS = 876_145
REAL_BOOKS = 2_360_655
REAL_WORKS = 1_521_962
REAL_AUTHORS = 829_529

GENRES = [
    "children",
    "comics, graphic",
    "fantasy, paranormal",
    "fiction",
    "history, historical fiction, biography",
    "mystery, thriller, crime",
    "non-fiction",
    "poetry",
    "romance",
    "young-adult",
]
GENRE_SHARE = np.array([0.05, 0.03, 0.13, 0.25, 0.10, 0.10, 0.12, 0.03, 0.12, 0.07])
# file-name suffix of the genre subsets (fiction and non-fiction have none)
SUBSET_NAMES = {
    "children": "children",
    "comics, graphic": "comics_graphic",
    "fantasy, paranormal": "fantasy_paranormal",
    "history, historical fiction, biography": "history_biography",
    "mystery, thriller, crime": "mystery_thriller_crime",
    "poetry": "poetry",
    "romance": "romance",
    "young-adult": "young_adult",
}
GENRE_SHELF = [
    "childrens",
    "graphic-novels",
    "fantasy",
    "fiction",
    "historical-fiction",
    "mystery",
    "non-fiction",
    "poetry",
    "romance",
    "young-adult",
]
TOPIC_WORDS = [
    ["animals", "bedtime", "picture-books", "school", "adventure", "friendship", "fairy-tales", "rhymes"],
    ["manga", "superheroes", "webcomics", "noir-comics", "graphic-memoir", "sci-fi-comics", "humor-comics"],
    [
        "dragons",
        "vampires",
        "faeries",
        "magic-school",
        "epic-quest",
        "witches",
        "werewolves",
        "urban-fantasy",
        "mythology",
        "sword-and-sorcery",
        "ghosts",
        "time-travel",
    ],
    [
        "literary",
        "family-saga",
        "satire",
        "short-stories",
        "classics",
        "dystopia",
        "space-opera",
        "war-novels",
        "southern-gothic",
        "magical-realism",
        "coming-of-age",
        "campus",
    ],
    [
        "ww2",
        "tudors",
        "ancient-rome",
        "civil-war",
        "memoir",
        "presidents",
        "medieval",
        "victorian",
        "explorers",
    ],
    [
        "detective",
        "cozy-mystery",
        "legal-thriller",
        "spy",
        "serial-killer",
        "heist",
        "police-procedural",
        "psychological-thriller",
        "nordic-noir",
    ],
    [
        "science",
        "self-help",
        "business",
        "philosophy",
        "psychology",
        "cooking",
        "travel",
        "economics",
        "true-crime",
        "nature",
    ],
    ["sonnets", "spoken-word", "haiku", "epic-poetry", "modern-poetry"],
    [
        "regency",
        "contemporary-romance",
        "paranormal-romance",
        "romantic-suspense",
        "cowboys",
        "billionaires",
        "second-chance",
        "sports-romance",
        "highlanders",
    ],
    [
        "ya-dystopian",
        "ya-fantasy",
        "ya-contemporary",
        "ya-romance",
        "ya-paranormal",
        "ya-sci-fi",
        "ya-mystery",
    ],
]
GENERIC_WORDS = [
    "the",
    "a",
    "of",
    "and",
    "in",
    "story",
    "life",
    "love",
    "night",
    "world",
    "heart",
    "house",
    "secret",
    "last",
    "first",
    "city",
    "dark",
    "light",
    "time",
    "girl",
    "man",
    "war",
    "road",
    "river",
    "stone",
    "garden",
    "king",
    "queen",
    "shadow",
    "return",
    "summer",
    "winter",
    "fire",
    "water",
    "book",
    "letters",
    "song",
    "blood",
]
FIRST_NAMES = [
    "Anna",
    "James",
    "Maria",
    "John",
    "Emma",
    "Robert",
    "Olivia",
    "Michael",
    "Sophia",
    "David",
    "Grace",
    "Thomas",
    "Lucy",
    "Daniel",
    "Clara",
    "Samuel",
    "Ella",
    "Henry",
    "Alice",
    "Peter",
    "Nora",
    "Paul",
    "Ruth",
    "Mark",
    "Iris",
    "Hugo",
    "Laura",
    "Adam",
    "Jane",
    "Oscar",
    "Mia",
    "Leo",
    "Zoe",
    "Victor",
    "Ada",
    "Felix",
    "Rosa",
]
LAST_NAMES = [
    "Smith",
    "Johnson",
    "Brown",
    "Taylor",
    "Miller",
    "Wilson",
    "Moore",
    "Clark",
    "Lewis",
    "Walker",
    "Hall",
    "Young",
    "King",
    "Wright",
    "Scott",
    "Green",
    "Baker",
    "Adams",
    "Nelson",
    "Hill",
    "Campbell",
    "Mitchell",
    "Roberts",
    "Carter",
    "Phillips",
    "Evans",
    "Turner",
    "Torres",
    "Parker",
    "Collins",
    "Edwards",
    "Stewart",
    "Morris",
    "Murphy",
    "Cook",
    "Rogers",
    "Morgan",
    "Cooper",
    "Reed",
    "Bailey",
    "Bell",
    "Kelly",
    "Howard",
    "Ward",
    "Cox",
    "Diaz",
    "Fields",
]
FORMATS = ["Paperback", "Hardcover", "Kindle Edition", "Mass Market Paperback", "ebook", "Audiobook", ""]
PUBLISHERS = ["Penguin", "HarperCollins", "Random House", "St. Martin's Press", "Tor Books", "Scholastic", ""]
LANGS = ["eng", "", "en-US", "en-GB", "spa", "fre", "ger"]
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
TZ_OFFSETS_MIN = np.array([-420, -480, -300, -240, 0, 60, 330, 600])
TZ_P = np.array([0.3, 0.2, 0.2, 0.1, 0.08, 0.07, 0.03, 0.02])

RATING_MIX = np.array([0.020, 0.059, 0.223, 0.359, 0.339])  # ratings 1..5 among rated rows (real)
RATING_TASTE = np.array([0.018, 0.055, 0.218, 0.360, 0.349])
# books differ in how much their readers like them: a work's ratings are drawn with a per-work shift on the logit
# scale of the rating draw. On goodbooks-10k's books.csv (real Goodreads rating histograms, millions of ratings)
# the share of 4-5 stars per book is 0.54 / 0.66 / 0.73 / 0.79 / 0.86 at the 5 / 25 / 50 / 75 / 95th
# percentile; a normal shift with this standard deviation spreads the generated shares about as widely
QUALITY_SD = 0.5
QUALITY_SCALE = float(np.sqrt(1.0 + QUALITY_SD**2 * 3.0 / np.pi**2))  # keeps the overall rating mix
# books differ in how often their shelvers have read them: a work's read draws are shifted on the logit scale.
# On goodbooks-10k, a book's real to-read shelves (to_read.csv) against its real ratings (books.csv
# ratings_count, expected from its share of all ratings) give ln(to-read / read), which is -logit(read share):
# standard deviation 0.97 over the 714 books published up to 2010 with 20+ expected shelves (Poisson noise
# 0.16; later books are rarer in to_read.csv by when it was collected, so they are left out)
READ_SD = 1.0
READ_SCALE = float(np.sqrt(1.0 + READ_SD**2 * 3.0 / np.pi**2))  # keeps the overall read share
# chosen so that ALS beats popularity about as clearly as on real Goodreads shelves (see README)
P_TASTE, P_AUTHOR, P_POP = 0.82, 0.13, 0.05
ZIPF_WORKS = 1.0  # work popularity ~ rank^-1: the top 1% of books hold >= 10x their share from scale 0.01
EXTRA_EDITIONS_SHARE = 0.25  # all later editions of a work together: a quarter of its first edition's weight
TASTE_CONCENTRATION = 0.05
BOOKS_PER_TOPIC = 200
P_READ = 0.49
P_RATED_IF_READ, P_RATED_IF_UNREAD = 0.92, 0.0127
P_REVIEWED_IF_RATED, P_REVIEWED_IF_UNRATED = 0.15, 0.0042

USERS_PER_CHUNK = 2048
T_START = 1167609600  # 2007-01-01
T_END = 1509494400  # 2017-11-01
# prime moduli for id bijections (ids look like Goodreads ids: sparse, up to tens of millions)
BOOK_ID_P, WORK_ID_P, AUTHOR_ID_P = 36_000_007, 58_000_003, 17_500_013

INTERACTIONS_CSV = "goodreads_interactions.csv"
USER_MAP_CSV = "user_id_map.csv"
BOOK_MAP_CSV = "book_id_map.csv"
DEDUP_JSON = "goodreads_interactions_dedup.json.gz"
BOOKS_JSON = "goodreads_books.json.gz"
AUTHORS_JSON = "goodreads_book_authors.json.gz"
WORKS_JSON = "goodreads_book_works.json.gz"
GENRES_JSON = "goodreads_book_genres_initial.json.gz"


@dataclass(frozen=True)
class Sizes:
    users: int
    books: int
    works: int
    authors: int
    interactions: int
    topics: int

    @classmethod
    def for_scale(cls, scale: float) -> Sizes:
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        books = max(200, round(REAL_BOOKS * scale))
        works = max(120, min(books, round(REAL_WORKS * scale)))
        authors = max(60, min(works, round(REAL_AUTHORS * scale)))
        return cls(
            users=max(100, round(REAL_USERS * scale)),
            books=books,
            works=works,
            authors=authors,
            interactions=max(2000, round(REAL_INTERACTIONS * scale)),
            topics=int(np.clip(books // BOOKS_PER_TOPIC, 10, 400)),
        )


def _bijection(i: np.ndarray, p: int, seed: int) -> np.ndarray:
    """Distinct pseudo-random ids in [1, p] for distinct i < p (an affine map modulo a prime)."""
    a = 1 + (seed * 7919 + 104729) % (p - 1)
    b = (seed * 15485863) % p
    return 1 + (i.astype(np.int64) * a + b) % p


def _hex32(rng: np.random.Generator, n: int) -> list[str]:
    hi = rng.integers(0, 2**63, size=n, dtype=np.int64)
    lo = rng.integers(0, 2**63, size=n, dtype=np.int64)
    return [f"{x:016x}{y:016x}" for x, y in zip(hi.tolist(), lo.tolist(), strict=True)]


def format_dates(t: np.ndarray, tz_min: np.ndarray) -> list[str]:
    """Unix seconds and UTC offsets (minutes) -> ``EEE MMM dd HH:mm:ss Z yyyy`` strings as in the UCSD files."""
    local = t.astype(np.int64) + tz_min.astype(np.int64) * 60
    days = local // 86400
    sod = local - days * 86400
    d = days.astype("datetime64[D]")
    month_start = d.astype("datetime64[M]")
    year = d.astype("datetime64[Y]").astype(np.int64) + 1970
    month = month_start.astype(np.int64) % 12
    day = (d - month_start.astype("datetime64[D]")).astype(np.int64) + 1
    wd = (days + 3) % 7  # 1970-01-01 was a Thursday (Mon = 0)
    hh, mm, ss = sod // 3600, (sod // 60) % 60, sod % 60
    sign = np.where(tz_min < 0, "-", "+")
    tza = np.abs(tz_min)
    return [
        f"{WEEKDAYS[w]} {MONTHS[m]} {dd:02d} {h:02d}:{mi:02d}:{s:02d} {sg}{z // 60:02d}{z % 60:02d} {y}"
        for w, m, dd, h, mi, s, sg, z, y in zip(
            wd.tolist(),
            month.tolist(),
            day.tolist(),
            hh.tolist(),
            mm.tolist(),
            ss.tolist(),
            sign.tolist(),
            tza.tolist(),
            year.tolist(),
            strict=True,
        )
    ]


class Catalogue:
    """Books, works, authors and topics, with per-topic and per-author sampling tables."""

    def __init__(self, sizes: Sizes, seed: int):
        rng = np.random.default_rng([seed, 0xB00C])
        self.sizes = sizes
        nb, nw, na, nt = sizes.books, sizes.works, sizes.authors, sizes.topics
        # topics -> genres, with the real genre mix; every genre gets at least one topic
        topic_genre = np.concatenate([np.arange(10), rng.choice(10, size=nt - 10, p=GENRE_SHARE)])
        self.topic_genre = np.sort(topic_genre)
        counters = np.zeros(10, dtype=int)
        self.topic_word = []
        for g in self.topic_genre:
            words = TOPIC_WORDS[g]
            k = counters[g]
            counters[g] += 1
            self.topic_word.append(
                words[k % len(words)] + (f"-{k // len(words) + 1}" if k >= len(words) else "")
            )
        # authors -> topics (topic sizes follow their genre's share)
        topic_p = (
            GENRE_SHARE[self.topic_genre] / np.bincount(self.topic_genre, minlength=10)[self.topic_genre]
        )
        topic_p = topic_p / topic_p.sum()
        self.author_topic = rng.choice(nt, size=na, p=topic_p)
        # works -> authors: every author one work, the rest by a Zipf law over authors
        author_w = 1.0 / np.arange(1, na + 1) ** 1.1
        author_w = author_w[rng.permutation(na)]
        extra = rng.choice(na, size=nw - na, p=author_w / author_w.sum())
        self.work_author = np.concatenate([np.arange(na), extra])
        # books -> works: every work one edition, the rest by a Zipf law over works
        work_w = 1.0 / np.arange(1, nw + 1) ** 1.0
        work_w = work_w[rng.permutation(nw)]
        extra = rng.choice(nw, size=nb - nw, p=work_w / work_w.sum())
        self.book_work = np.concatenate([np.arange(nw), extra])
        self.book_is_first_edition = np.zeros(nb, dtype=bool)
        self.book_is_first_edition[:nw] = True
        perm = rng.permutation(nb)  # shuffle so book index order says nothing about work or edition
        self.book_work = self.book_work[perm]
        self.book_is_first_edition = self.book_is_first_edition[perm]
        self.book_author = self.work_author[self.book_work]
        self.book_topic = self.author_topic[self.book_author]
        self.book_genre = self.topic_genre[self.book_topic]
        # popularity: Zipf over works (a random rank); a work's first edition carries its weight, its later
        # editions share EXTRA_EDITIONS_SHARE of it (most readers shelve the edition everybody shelves)
        w_work = (1.0 / np.arange(1, nw + 1) ** ZIPF_WORKS)[rng.permutation(nw)]
        n_extra = np.bincount(self.book_work[~self.book_is_first_edition], minlength=nw)
        self.book_w = w_work[self.book_work] * np.where(
            self.book_is_first_edition,
            1.0,
            EXTRA_EDITIONS_SHARE / np.maximum(n_extra[self.book_work], 1),
        )
        # series: consecutive works of an author with >= 2 works form one series with probability 0.5
        self.work_series = np.full(nw, -1, dtype=np.int64)
        order = np.argsort(self.work_author, kind="stable")
        wa = self.work_author[order]
        starts = np.flatnonzero(np.r_[True, wa[1:] != wa[:-1]])
        counts = np.diff(np.r_[starts, nw])
        in_series = (counts >= 2) & (rng.random(len(starts)) < 0.5)
        for sid, (s, c) in enumerate(zip(starts[in_series], counts[in_series], strict=True)):
            self.work_series[order[s : s + c]] = sid
        self.n_series = int(in_series.sum())
        # how much readers like each work (its own stream: the draws above do not change with it)
        self.work_quality = np.random.default_rng([seed, 0x9A1]).normal(0.0, QUALITY_SD, nw)
        # how often each work's shelvers have read it (its own stream too)
        self.work_read = np.random.default_rng([seed, 0x9A2]).normal(0.0, READ_SD, nw)
        # ids as Goodreads would have them
        self.book_ids = _bijection(np.arange(nb), BOOK_ID_P, seed)
        self.work_ids = _bijection(np.arange(nw), WORK_ID_P, seed + 1)
        self.author_ids = _bijection(np.arange(na), AUTHOR_ID_P, seed + 2)
        # sampling tables: books sorted by topic / by author with cumulative weights
        self.by_topic = _GroupSampler(self.book_topic, self.book_w, nt)
        self.by_author = _GroupSampler(self.book_author, self.book_w, na)
        self.pop_cum = np.cumsum(self.book_w)
        # authors per topic, by how much they are read (for favourite authors)
        author_w_read = np.bincount(self.book_author, weights=self.book_w, minlength=na)
        self.authors_by_topic = _GroupSampler(self.author_topic, author_w_read, nt)
        first = [FIRST_NAMES[i % len(FIRST_NAMES)] for i in rng.integers(0, 10**6, size=na)]
        last = [LAST_NAMES[i % len(LAST_NAMES)] for i in rng.integers(0, 10**6, size=na)]
        initials = rng.integers(0, 26, size=na)
        self.author_names = [
            f"{f} {chr(65 + i)}. {ln}" if i % 3 == 0 else f"{f} {ln}"
            for f, ln, i in zip(first, last, initials.tolist(), strict=True)
        ]

    def sample_popular(self, u: np.ndarray) -> np.ndarray:
        return np.minimum(
            np.searchsorted(self.pop_cum, u * self.pop_cum[-1], side="right"), self.sizes.books - 1
        )


class _GroupSampler:
    """Weighted sampling of an item within a group (topic, author) in O(log n) per draw, vectorised."""

    def __init__(self, group: np.ndarray, weight: np.ndarray, n_groups: int):
        self.order = np.argsort(group, kind="stable")
        self.cum = np.cumsum(weight[self.order])
        counts = np.bincount(group, minlength=n_groups)
        self.end = np.cumsum(counts)
        self.start = self.end - counts
        self.counts = counts

    def sample(self, groups: np.ndarray, u: np.ndarray) -> np.ndarray:
        lo = np.where(self.start[groups] > 0, self.cum[np.maximum(self.start[groups] - 1, 0)], 0.0)
        hi = self.cum[np.maximum(self.end[groups] - 1, 0)]
        pos = np.searchsorted(self.cum, lo + u * (hi - lo), side="right")
        pos = np.clip(pos, self.start[groups], np.maximum(self.end[groups] - 1, self.start[groups]))
        return self.order[pos]


@dataclass
class Chunk:
    """One chunk of users' interactions, already in output order (grouped by user, newest first)."""

    user: np.ndarray  # global user index
    book: np.ndarray  # book index
    is_read: np.ndarray
    rating: np.ndarray
    is_reviewed: np.ndarray
    date_added: np.ndarray
    date_updated: np.ndarray
    read_at: np.ndarray  # 0 = absent
    started_at: np.ndarray  # 0 = absent
    tz: np.ndarray  # minutes, per row


def user_activity(sizes: Sizes, seed: int) -> np.ndarray:
    """Shelved books per user: log-normal, long-tailed, summing to the target interaction count."""
    rng = np.random.default_rng([seed, 0xAC7])
    x = rng.lognormal(mean=0.0, sigma=1.25, size=sizes.users)
    cap = max(1, int(sizes.books * 0.4))
    n = np.clip(np.rint(x * sizes.interactions / x.sum()), 1, cap)
    for _ in range(3):  # clipping lost mass: redistribute it over users below the cap
        missing = sizes.interactions - n.sum()
        if missing <= 0:
            break
        free = n < cap
        n[free] = np.clip(np.rint(n[free] * (1 + missing / n[free].sum())), 1, cap)
    return n.astype(np.int64)


def shifted_draw(u: np.ndarray, shift: np.ndarray, scale: float) -> np.ndarray:
    """Uniform draws ``u`` shifted by each book's ``shift`` on the logit scale (higher: larger draws), rescaled
    by ``scale`` (``sqrt(1 + sd² · 3 / π²)`` for shifts of standard deviation ``sd``) so that, over books, the
    draws stay close to uniform: overall shares drawn from them do not change."""
    with np.errstate(divide="ignore"):
        logit = np.log(u) - np.log1p(-u)
    return 1.0 / (1.0 + np.exp(-(logit + shift) / scale))


def liked_draw(u: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Rating draws: higher ``quality``, more 4 and 5 stars; the overall rating mix unchanged."""
    return shifted_draw(u, quality, QUALITY_SCALE)


def generate_chunk(cat: Catalogue, activity: np.ndarray, first_user: int, seed: int, chunk_no: int) -> Chunk:
    rng = np.random.default_rng([seed, 0xC4, chunk_no])
    sizes = cat.sizes
    n_users = len(activity)
    nt = sizes.topics
    # tastes: sparse Dirichlet over topics; favourite authors from the user's topics
    taste = rng.dirichlet(np.full(nt, TASTE_CONCENTRATION), size=n_users)
    taste_cum = np.cumsum(taste, axis=1)
    fav_topic = (taste_cum[:, None, :] < rng.random((n_users, 3, 1))).sum(axis=2).clip(0, nt - 1)
    fav_author = cat.authors_by_topic.sample(fav_topic.ravel(), rng.random(fav_topic.size)).reshape(
        n_users, 3
    )
    owner = np.zeros(0, dtype=np.int64)
    book = np.zeros(0, dtype=np.int64)
    src = np.zeros(0, dtype=np.int64)
    have = np.zeros(n_users, dtype=np.int64)
    for round_no in range(8):
        # draw (with oversampling) what each user still lacks; the last rounds fall back to popularity, then uniform draws,
        # so heavy users whose tastes are exhausted still reach their activity
        deficit = activity - have
        if not deficit.any():
            break
        new_owner = np.repeat(
            np.arange(n_users), np.ceil(deficit * 1.35 + np.where(deficit > 0, 4, 0)).astype(np.int64)
        )
        new_src = rng.choice(3, size=len(new_owner), p=[P_TASTE, P_AUTHOR, P_POP])
        if round_no >= 5:
            new_book = cat.sample_popular(rng.random(len(new_owner)))
            new_src[:] = 2
        if round_no == 7:
            new_book = rng.integers(0, sizes.books, size=len(new_owner))
        else:
            new_book = _draw_books(cat, rng, new_owner, new_src, taste_cum, fav_author)
        # de-duplicate per user keeping draw order (earlier rounds first), then keep the first n_u
        owner = np.concatenate([owner, new_owner])
        book = np.concatenate([book, new_book])
        src = np.concatenate([src, new_src])
        key = owner * sizes.works + cat.book_work[book]  # a reader shelves one edition of a work
        _, first_idx = np.unique(key, return_index=True)
        keep = np.sort(first_idx)
        owner, book, src = owner[keep], book[keep], src[keep]
        stable = np.argsort(owner, kind="stable")
        owner, book, src = owner[stable], book[stable], src[stable]
        pos_in_user = np.arange(len(owner)) - np.searchsorted(owner, owner, side="left")
        keep = pos_in_user < activity[owner]
        owner, book, src = owner[keep], book[keep], src[keep]
        have = np.bincount(owner, minlength=n_users)
    n = len(owner)
    # flags
    works = cat.book_work[book]
    is_read = shifted_draw(rng.random(n), cat.work_read[works], READ_SCALE) > 1.0 - P_READ
    rated = rng.random(n) < np.where(is_read, P_RATED_IF_READ, P_RATED_IF_UNREAD)
    reviewed = rng.random(n) < np.where(rated, P_REVIEWED_IF_RATED, P_REVIEWED_IF_UNRATED)
    u = liked_draw(rng.random(n), cat.work_quality[works])
    r_taste = np.searchsorted(np.cumsum(RATING_TASTE), u * RATING_TASTE.sum(), side="right") + 1
    # popularity draws get the mix that makes this chunk's overall mix equal the real one (de-duplication
    # changes the share of each source a little, so the share is measured rather than assumed)
    share = max(float(np.mean(src[rated] == 2)) if rated.any() else P_POP, 1e-6)
    mix_pop = np.clip((RATING_MIX - (1 - share) * RATING_TASTE) / share, 1e-4, None)
    r_pop = np.searchsorted(np.cumsum(mix_pop), u * mix_pop.sum(), side="right") + 1
    rating = np.where(rated, np.where(src == 2, r_pop, r_taste).clip(1, 5), 0)
    # time: per-user join date and time zone; rows newest first within a user
    join = rng.integers(T_START, T_END - 86400 * 30, size=n_users)
    tz_user = rng.choice(TZ_OFFSETS_MIN, size=n_users, p=TZ_P)
    added = join[owner] + (rng.random(n) ** 0.7 * (T_END - join[owner])).astype(np.int64)
    order = np.lexsort((-added, owner))
    owner, book, is_read, rating, reviewed, added = (
        owner[order],
        book[order],
        is_read[order],
        rating[order],
        reviewed[order],
        added[order],
    )
    updated = added + np.where(rng.random(n) < 0.4, 0, rng.exponential(30 * 86400, n)).astype(np.int64)
    has_read_at = is_read & (rng.random(n) < 0.7)
    read_at = np.where(has_read_at, added + rng.exponential(60 * 86400, n).astype(np.int64), 0)
    has_start = has_read_at & (rng.random(n) < 0.5)
    started = np.where(has_start, read_at - rng.exponential(14 * 86400, n).astype(np.int64), 0)
    return Chunk(
        user=owner + first_user,
        book=book,
        is_read=is_read,
        rating=rating.astype(np.int64),
        is_reviewed=reviewed,
        date_added=added,
        date_updated=np.minimum(updated, T_END + 86400 * 60),
        read_at=read_at,
        started_at=started,
        tz=tz_user[owner],
    )


def _draw_books(
    cat: Catalogue,
    rng: np.random.Generator,
    owner: np.ndarray,
    src: np.ndarray,
    taste_cum: np.ndarray,
    fav_author: np.ndarray,
) -> np.ndarray:
    """One book per draw: by taste (topic from the user's mixture), favourite author, or global popularity."""
    nt = cat.sizes.topics
    book = np.empty(len(owner), dtype=np.int64)
    t = src == 0
    topics = (taste_cum[owner[t]] < rng.random((int(t.sum()), 1))).sum(axis=1).clip(0, nt - 1)
    book[t] = cat.by_topic.sample(topics, rng.random(len(topics)))
    a = src == 1
    authors = fav_author[owner[a], rng.integers(0, 3, size=int(a.sum()))]
    book[a] = cat.by_author.sample(authors, rng.random(len(authors)))
    p = src == 2
    book[p] = cat.sample_popular(rng.random(int(p.sum())))
    return book


def iter_chunks(cat: Catalogue, activity: np.ndarray, seed: int) -> Iterator[Chunk]:
    for chunk_no, start in enumerate(range(0, len(activity), USERS_PER_CHUNK)):
        yield generate_chunk(cat, activity[start : start + USERS_PER_CHUNK], start, seed, chunk_no)


def user_hashes(n_users: int, seed: int) -> list[str]:
    """32-hex pseudonymous user ids (deterministic for the seed)."""
    return _hex32(np.random.default_rng([seed, 0x05E7]), n_users)


class _GzText:
    """gzip text writer; mtime=0 and no file name in the header, so output is byte-identical per seed."""

    def __init__(self, path: Path):
        self.raw = open(path, "wb")
        self.gz = gzip.GzipFile(filename="", mode="wb", fileobj=self.raw, compresslevel=4, mtime=0)

    def write(self, text: str) -> None:
        self.gz.write(text.encode("utf-8"))

    def close(self) -> None:
        self.gz.close()
        self.raw.close()


def _words(rng: np.random.Generator, vocab: list[str], n: int) -> str:
    return " ".join(vocab[i] for i in rng.integers(0, len(vocab), size=n))


@dataclass
class BookStats:
    """Per-book tallies of the written interactions, for the metadata files (counts, ratings, reviews)."""

    shelved: np.ndarray
    n_rated: np.ndarray
    rating_sum: np.ndarray
    rating_hist: np.ndarray  # (books, 6): how many ratings of 0..5 stars
    n_reviewed: np.ndarray

    @classmethod
    def empty(cls, n_books: int) -> BookStats:
        z = lambda *shape: np.zeros(shape, dtype=np.int64)  # noqa: E731
        return cls(z(n_books), z(n_books), z(n_books), z(n_books, 6), z(n_books))

    def add(self, ch: Chunk) -> None:
        np.add.at(self.shelved, ch.book, 1)
        rated = ch.rating > 0
        np.add.at(self.n_rated, ch.book[rated], 1)
        np.add.at(self.rating_sum, ch.book[rated], ch.rating[rated])
        np.add.at(self.rating_hist, (ch.book, ch.rating), 1)
        np.add.at(self.n_reviewed, ch.book[ch.is_reviewed], 1)


def generate(out: str | Path, scale: float = 0.001, seed: int = 42, subsets: bool = False) -> dict[str, int]:
    """Write the UCSD files for ``scale`` into ``out``; return row counts per file."""
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = Sizes.for_scale(scale)
    log.info(
        "generating scale %s: %d users, %d books, %d works, %d authors, ~%d interactions -> %s",
        scale,
        sizes.users,
        sizes.books,
        sizes.works,
        sizes.authors,
        sizes.interactions,
        out,
    )
    cat = Catalogue(sizes, seed)
    activity = user_activity(sizes, seed)
    hashes = user_hashes(sizes.users, seed)
    counts = _write_id_maps(out, hashes, cat.book_ids)
    stats = BookStats.empty(sizes.books)
    n_rows = _write_interactions(out, cat, activity, hashes, stats, seed, subsets, t0)
    counts[INTERACTIONS_CSV] = n_rows
    counts[DEDUP_JSON] = n_rows
    counts.update(_write_metadata(out, cat, stats, seed, subsets))
    log.info("generated %d interactions in %.1f s", n_rows, time.perf_counter() - t0)
    return counts


def _write_id_maps(out: Path, hashes: list[str], book_ids: np.ndarray) -> dict[str, int]:
    with open(out / USER_MAP_CSV, "w", encoding="utf-8", newline="") as f:
        f.write("user_id_csv,user_id\n")
        f.write("".join(f"{i},{h}\n" for i, h in enumerate(hashes)))
    with open(out / BOOK_MAP_CSV, "w", encoding="utf-8", newline="") as f:
        f.write("book_id_csv,book_id\n")
        f.write("".join(f"{i},{b}\n" for i, b in enumerate(book_ids.tolist())))
    return {USER_MAP_CSV: len(hashes), BOOK_MAP_CSV: len(book_ids)}


def _write_interactions(
    out: Path,
    cat: Catalogue,
    activity: np.ndarray,
    hashes: list[str],
    stats: BookStats,
    seed: int,
    subsets: bool,
    t0: float,
) -> int:
    """The interactions CSV and the dedup JSON (and the genre subsets), chunk by chunk; tallies ``stats``.
    Returns the number of rows."""
    book_ids_s = [str(b) for b in cat.book_ids.tolist()]
    genre_subset = [SUBSET_NAMES.get(GENRES[g]) for g in range(10)]
    n_rows = 0
    with ExitStack() as stack:
        csv_f = stack.enter_context(open(out / INTERACTIONS_CSV, "w", encoding="utf-8", newline=""))
        csv_f.write("user_id,book_id,is_read,rating,is_reviewed\n")
        js = _GzText(out / DEDUP_JSON)
        stack.callback(js.close)
        sub_files: dict[str, _GzText] = {}
        if subsets:
            for name in SUBSET_NAMES.values():
                sub_files[name] = _GzText(out / f"goodreads_interactions_{name}.json.gz")
                stack.callback(sub_files[name].close)
        for chunk_no, ch in enumerate(iter_chunks(cat, activity, seed)):
            n = len(ch.user)
            n_rows += n
            stats.add(ch)
            read_i = ch.is_read.astype(np.int8).tolist()
            rev_i = ch.is_reviewed.astype(np.int8).tolist()
            users = ch.user.tolist()
            books = ch.book.tolist()
            ratings = ch.rating.tolist()
            csv_f.write(
                "".join(
                    f"{u},{b},{r},{x},{v}\n"
                    for u, b, r, x, v in zip(users, books, read_i, ratings, rev_i, strict=True)
                )
            )
            lines = _json_lines(cat, ch, chunk_no, seed, hashes, book_ids_s, users, books, read_i, ratings)
            js.write("".join(lines))
            if subsets:
                for i, b in enumerate(books):
                    name = genre_subset[cat.book_genre[b]]
                    if name is not None:
                        sub_files[name].write(lines[i])
            if chunk_no % 20 == 0:
                log.info(
                    "  interactions: %d users, %d rows (%.0f s)",
                    ch.user[-1] + 1,
                    n_rows,
                    time.perf_counter() - t0,
                )
    return n_rows


def _json_lines(
    cat: Catalogue,
    ch: Chunk,
    chunk_no: int,
    seed: int,
    hashes: list[str],
    book_ids_s: list[str],
    users: list[int],
    books: list[int],
    read_i: list[int],
    ratings: list[int],
) -> list[str]:
    """One chunk's lines of the dedup JSON (review ids, dates, short review texts)."""
    n = len(users)
    rng = np.random.default_rng([seed, 0x7E57, chunk_no])
    review_ids = _hex32(rng, n)
    d_add = format_dates(ch.date_added, ch.tz)
    d_upd = format_dates(ch.date_updated, ch.tz)
    has_read = ch.read_at > 0
    d_read = np.full(n, "", dtype=object)
    d_read[has_read] = format_dates(ch.read_at[has_read], ch.tz[has_read])
    has_start = ch.started_at > 0
    d_start = np.full(n, "", dtype=object)
    d_start[has_start] = format_dates(ch.started_at[has_start], ch.tz[has_start])
    review_text = np.full(n, "", dtype=object)
    for i in np.flatnonzero(ch.is_reviewed).tolist():
        review_text[i] = f"A {cat.topic_word[cat.book_topic[books[i]]]} book. " + _words(
            rng, GENERIC_WORDS, 8
        )
    return [
        f'{{"user_id": "{hashes[u]}", "book_id": "{book_ids_s[b]}", "review_id": "{rid}", '
        f'"is_read": {"true" if r else "false"}, "rating": {x}, "review_text_incomplete": "{txt}", '
        f'"date_added": "{da}", "date_updated": "{du}", "read_at": "{dr}", "started_at": "{ds}"}}\n'
        for u, b, rid, r, x, txt, da, du, dr, ds in zip(
            users,
            books,
            review_ids,
            read_i,
            ratings,
            review_text.tolist(),
            d_add,
            d_upd,
            d_read.tolist(),
            d_start.tolist(),
            strict=True,
        )
    ]


@dataclass
class Works:
    """What the works and books files share: titles, years, volume numbers and series ids."""

    titles: list[str]
    year: np.ndarray
    series_pos: np.ndarray  # volume number of a work in its series (0: not in a series)
    series_ids: np.ndarray


def _write_metadata(out: Path, cat: Catalogue, stats: BookStats, seed: int, subsets: bool) -> dict[str, int]:
    """Works, authors, books and genres files, consistent with the interactions (``stats``)."""
    rng = np.random.default_rng([seed, 0x3E7A])  # one stream, drawn in this order: works, then books
    works = _works(cat, rng, seed)
    counts = _write_works(out, cat, stats, works, rng)
    counts.update(_write_authors(out, cat, stats))
    counts.update(_write_books(out, cat, stats, works, rng, subsets))
    return counts


def _works(cat: Catalogue, rng: np.random.Generator, seed: int) -> Works:
    nw = cat.sizes.works
    work_year = rng.integers(1900, 2018, size=nw)
    rng.random(
        nw
    )  # a draw that no longer decides anything; kept so every generated file stays byte-identical
    titles = [
        " ".join(
            w.capitalize()
            for w in (
                [cat.topic_word[cat.author_topic[cat.work_author[i]]].split("-")[0]]
                + [GENERIC_WORDS[j] for j in rng.integers(0, len(GENERIC_WORDS), size=2)]
            )
        )
        for i in range(nw)
    ]
    series_pos = np.zeros(nw, dtype=np.int64)
    seen: dict[int, int] = {}
    for i, s in enumerate(cat.work_series.tolist()):
        if s >= 0:
            seen[s] = seen.get(s, 0) + 1
            series_pos[i] = seen[s]
    # series ids: sparse like Goodreads'
    series_ids = _bijection(np.arange(max(1, cat.n_series)), 1_000_003, seed + 3)
    return Works(titles, work_year, series_pos, series_ids)


def _write_works(out: Path, cat: Catalogue, stats: BookStats, works: Works, rng: np.random.Generator) -> dict:
    """The works file: each work's tallies aggregated over its editions; its best book is its most shelved."""
    nw = cat.sizes.works
    shelved, n_rated, rating_sum, rating_hist, n_reviewed = (
        stats.shelved,
        stats.n_rated,
        stats.rating_sum,
        stats.rating_hist,
        stats.n_reviewed,
    )
    titles, work_year = works.titles, works.year
    w_shelved = np.bincount(cat.book_work, weights=shelved, minlength=nw).astype(np.int64)
    w_rated = np.bincount(cat.book_work, weights=n_rated, minlength=nw).astype(np.int64)
    w_sum = np.bincount(cat.book_work, weights=rating_sum, minlength=nw).astype(np.int64)
    w_rev = np.bincount(cat.book_work, weights=n_reviewed, minlength=nw).astype(np.int64)
    w_hist = np.stack(
        [np.bincount(cat.book_work, weights=rating_hist[:, r], minlength=nw) for r in range(6)], 1
    )
    w_hist = w_hist.astype(np.int64)
    w_books = np.bincount(cat.book_work, minlength=nw)
    # best book of a work: its most shelved edition
    order = np.lexsort((-shelved, cat.book_work))
    first = np.r_[True, cat.book_work[order][1:] != cat.book_work[order][:-1]]
    best_book = np.zeros(nw, dtype=np.int64)
    best_book[cat.book_work[order][first]] = order[first]
    wf = _GzText(out / WORKS_JSON)
    try:
        lines = []
        for i in range(nw):
            h = w_hist[i]
            year = str(work_year[i]) if rng.random() > 0.05 else ""
            lines.append(
                f'{{"books_count": "{w_books[i]}", "reviews_count": "{w_shelved[i]}", '
                f'"original_publication_month": "{rng.integers(1, 13) if year else ""}", '
                f'"default_description_language_code": "", "text_reviews_count": "{w_rev[i]}", '
                f'"best_book_id": "{cat.book_ids[best_book[i]]}", "original_publication_year": "{year}", '
                f'"original_title": "{titles[i]}", '
                f'"rating_dist": "5:{h[5]}|4:{h[4]}|3:{h[3]}|2:{h[2]}|1:{h[1]}|total:{w_rated[i]}", '
                f'"default_chaptering_book_id": "", "original_publication_day": "", "original_language_id": "", '
                f'"ratings_count": "{w_rated[i]}", "media_type": "book", "ratings_sum": "{w_sum[i]}", '
                f'"work_id": "{cat.work_ids[i]}"}}\n'
            )
            if len(lines) >= 50_000:
                wf.write("".join(lines))
                lines = []
        wf.write("".join(lines))
    finally:
        wf.close()
    return {WORKS_JSON: nw}


def _write_authors(out: Path, cat: Catalogue, stats: BookStats) -> dict:
    na = cat.sizes.authors
    n_rated, rating_sum, n_reviewed = stats.n_rated, stats.rating_sum, stats.n_reviewed
    a_rated = np.bincount(cat.book_author, weights=n_rated, minlength=na).astype(np.int64)
    a_sum = np.bincount(cat.book_author, weights=rating_sum, minlength=na)
    a_rev = np.bincount(cat.book_author, weights=n_reviewed, minlength=na).astype(np.int64)
    af = _GzText(out / AUTHORS_JSON)
    try:
        af.write(
            "".join(
                f'{{"average_rating": "{(a_sum[i] / a_rated[i]) if a_rated[i] else 0:.2f}", '
                f'"author_id": "{cat.author_ids[i]}", "text_reviews_count": "{a_rev[i]}", '
                f'"name": "{cat.author_names[i]}", "ratings_count": "{a_rated[i]}"}}\n'
                for i in range(na)
            )
        )
    finally:
        af.close()
    return {AUTHORS_JSON: na}


def _write_books(
    out: Path, cat: Catalogue, stats: BookStats, works: Works, rng: np.random.Generator, subsets: bool
) -> dict:
    """The books and book-genres files (and the genre subsets of books)."""
    nb = cat.sizes.books
    shelved, n_rated, n_reviewed = stats.shelved, stats.n_rated, stats.n_reviewed
    avg = np.where(n_rated > 0, stats.rating_sum / np.maximum(n_rated, 1), 0.0)
    titles, work_year, series_pos, series_ids = works.titles, works.year, works.series_pos, works.series_ids
    bf = _GzText(out / BOOKS_JSON)
    gf = _GzText(out / GENRES_JSON)
    sub_books: dict[str, _GzText] = {}
    if subsets:
        sub_books = {name: _GzText(out / f"goodreads_books_{name}.json.gz") for name in SUBSET_NAMES.values()}
    genre_subset = [SUBSET_NAMES.get(GENRES[g]) for g in range(10)]
    try:
        blines: list[str] = []
        glines: list[str] = []
        for i in range(nb):
            w = cat.book_work[i]
            topic = cat.book_topic[i]
            g = cat.topic_genre[topic]
            word = cat.topic_word[topic]
            bid = cat.book_ids[i]
            s = int(shelved[i])
            shelves = [("to-read", max(1, s))]
            if s >= 2:
                shelves += [
                    (GENRE_SHELF[g], max(1, s // 3)),
                    (word, max(1, s // 4)),
                    ("favorites", max(1, s // 8)),
                ]
                shelves += [("currently-reading", max(1, s // 10)), ("owned", max(1, s // 12))]
            shelves_s = ", ".join(f'{{"count": "{c}", "name": "{nm}"}}' for nm, c in shelves)
            series = cat.work_series[w]
            title = titles[w]
            if series >= 0:
                title_full = (
                    f"{title} ({cat.author_names[cat.book_author[i]].split()[-1]} Saga, #{series_pos[w]})"
                )
                series_s = f'"{series_ids[series]}"'
            else:
                title_full, series_s = title, ""
            desc = (
                (
                    f"A {GENRES[g].split(',')[0]} novel about {word.replace('-', ' ')}. "
                    + _words(rng, GENERIC_WORDS, 12)
                    + f" {word.replace('-', ' ')}."
                )
                if rng.random() > 0.15
                else ""
            )
            pages = str(rng.integers(32, 900)) if rng.random() > 0.2 else ""
            year = str(work_year[w] + (0 if cat.book_is_first_edition[i] else rng.integers(0, 6)))
            year = min(year, "2017") if len(year) == 4 else year
            fmt = FORMATS[rng.integers(0, len(FORMATS))]
            isbn = f"{rng.integers(0, 10**9):09d}{rng.integers(0, 10)}" if rng.random() > 0.3 else ""
            isbn13 = f"978{isbn[:9]}{rng.integers(0, 10)}" if isbn else ""
            slug = title.lower().replace(" ", "-")
            lang = LANGS[rng.integers(0, len(LANGS))]
            blines.append(
                f'{{"isbn": "{isbn}", "text_reviews_count": "{n_reviewed[i]}", '
                f'"series": [{series_s}], "country_code": "US", "language_code": "{lang}", '
                f'"popular_shelves": [{shelves_s}], "asin": "", "is_ebook": "{"true" if fmt == "ebook" else "false"}", '
                f'"average_rating": "{avg[i]:.2f}", "kindle_asin": "", "similar_books": [], "description": "{desc}", '
                f'"format": "{fmt}", "link": "https://www.goodreads.com/book/show/{bid}-{slug}", '
                f'"authors": [{{"author_id": "{cat.author_ids[cat.book_author[i]]}", "role": ""}}], '
                f'"publisher": "{PUBLISHERS[rng.integers(0, len(PUBLISHERS))]}", "num_pages": "{pages}", '
                f'"publication_day": "{rng.integers(1, 29)}", "isbn13": "{isbn13}", '
                f'"publication_month": "{rng.integers(1, 13)}", "edition_information": "", '
                f'"publication_year": "{year}", "url": "https://www.goodreads.com/book/show/{bid}-{slug}", '
                f'"image_url": "https://images.gr-assets.com/books/{1300000000 + bid}m/{bid}.jpg", '
                f'"book_id": "{bid}", "ratings_count": "{n_rated[i]}", "work_id": "{cat.work_ids[w]}", '
                f'"title": "{title_full}", "title_without_series": "{title}"}}\n'
            )
            gcounts = {GENRES[g]: max(1, s // 2)}
            if g not in (3, 6):  # most genre books are also shelved as fiction / non-fiction
                gcounts["non-fiction" if g in (4,) and rng.random() < 0.5 else "fiction"] = max(1, s // 5)
            if rng.random() < 0.3:
                other = GENRES[rng.integers(0, 10)]
                gcounts.setdefault(other, max(1, s // 10))
            gs = ", ".join(f'"{k}": {v}' for k, v in gcounts.items())
            glines.append(f'{{"book_id": "{bid}", "genres": {{{gs}}}}}\n')
            if subsets and genre_subset[g] is not None:
                sub_books[genre_subset[g]].write(blines[-1])
            if len(blines) >= 20_000:
                bf.write("".join(blines))
                gf.write("".join(glines))
                blines, glines = [], []
        bf.write("".join(blines))
        gf.write("".join(glines))
    finally:
        bf.close()
        gf.close()
        for f in sub_books.values():
            f.close()
    return {BOOKS_JSON: nb, GENRES_JSON: nb}


def file_digest(path: str | Path) -> str:
    """sha256 of a file (used by tests to check determinism)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def to_goodbooks(ucsd_dir: str | Path, out: str | Path, min_ratings: int = 1) -> dict[str, int]:
    """Ratings-like data in the goodbooks-10k format from generated UCSD files.

    ``ratings.csv`` holds the *rated* shelves (``rating`` > 0, about 46% of rows, carrying the taste signal the
    generator tilts ratings by) with 1-based user and book ids; ``books.csv`` maps each rated book to its
    Goodreads id, title and author names (the other goodbooks columns are left empty). Users with fewer than
    ``min_ratings`` ratings are dropped. Returns row counts per file.
    """
    import csv
    import json

    src, out = Path(ucsd_dir), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = np.loadtxt(src / INTERACTIONS_CSV, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    user, book, rating = data[:, 0], data[:, 1], data[:, 3]
    rated = rating > 0
    user, book, rating = user[rated], book[rated], rating[rated]
    per_user = np.bincount(user)
    keep = per_user[user] >= min_ratings
    user, book, rating = user[keep], book[keep], rating[keep]
    _, user_gb = np.unique(user, return_inverse=True)
    books_used, book_gb = np.unique(book, return_inverse=True)
    book_map = np.loadtxt(src / BOOK_MAP_CSV, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    goodreads_id = dict(zip(book_map[:, 0].tolist(), book_map[:, 1].tolist(), strict=True))
    with gzip.open(src / AUTHORS_JSON, "rt", encoding="utf-8") as f:
        author_name = {a["author_id"]: a["name"] for a in map(json.loads, f)}
    meta: dict[int, tuple[str, str, str]] = {}
    with gzip.open(src / BOOKS_JSON, "rt", encoding="utf-8") as f:
        for b in map(json.loads, f):
            names = ", ".join(author_name.get(a["author_id"], "") for a in b["authors"])
            meta[int(b["book_id"])] = (b["title"], names, b["work_id"])
    with open(out / "ratings.csv", "w", encoding="utf-8", newline="") as f:
        f.write("user_id,book_id,rating\n")
        f.write(
            "".join(
                f"{u},{b},{r}\n"
                for u, b, r in zip(
                    (user_gb + 1).tolist(), (book_gb + 1).tolist(), rating.tolist(), strict=True
                )
            )
        )
    from recspark.sources.goodbooks import BOOK_COLUMNS

    with open(out / "books.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(BOOK_COLUMNS)
        for i, csv_id in enumerate(books_used.tolist(), 1):
            gid = goodreads_id[csv_id]
            title, authors, work = meta.get(gid, ("", "", ""))
            row = dict.fromkeys(BOOK_COLUMNS, "")
            row.update(
                book_id=i, goodreads_book_id=gid, best_book_id=gid, work_id=work, authors=authors, title=title
            )
            w.writerow([row[c] for c in BOOK_COLUMNS])
    return {"ratings.csv": int(len(user)), "books.csv": int(len(books_used))}
