"""Container names: docker-style random "adjective_surname" names and the
rule a user-given name must follow.

Randomness comes from os.urandom: importing `random` would cost ~2.5 ms on
the `berth run` path for one pick.
"""

import os

ADJECTIVES = (
    "admiring", "adoring", "affectionate", "agile", "amazing", "amused",
    "awesome", "beaming", "blissful", "bold", "boring", "brave", "bright",
    "brilliant", "busy", "calm", "candid", "charming", "cheerful", "clever",
    "compassionate", "confident", "cool", "courageous", "cranky", "curious",
    "dapper", "dazzling", "determined", "devoted", "diligent", "dreamy",
    "eager", "earnest", "ecstatic", "elastic", "elated", "elegant",
    "eloquent", "epic", "exciting", "fearless", "fervent", "festive",
    "flamboyant", "focused", "friendly", "frosty", "funny", "gallant",
    "generous", "gentle", "gifted", "gleeful", "goofy", "gracious", "great",
    "happy", "hardcore", "heuristic", "hopeful", "humble", "hungry",
    "inspiring", "intelligent", "interesting", "jolly", "jovial", "keen",
    "kind", "laughing", "lively", "loving", "loyal", "lucid", "magical",
    "merry", "modest", "musing", "mystifying", "nervous", "nifty",
    "nimble", "nostalgic", "objective", "optimistic", "patient", "peaceful",
    "pedantic", "pensive", "playful", "practical", "priceless", "quirky",
    "quizzical", "radiant", "recursing", "relaxed", "reverent", "romantic",
    "serene", "sharp", "silly", "sleepy", "spirited", "steady", "stoic",
    "sunny", "sweet", "tender", "thirsty", "thoughtful", "tranquil",
    "trusting", "unruffled", "upbeat", "vibrant", "vigilant", "vigorous",
    "vivid", "wizardly", "wonderful", "xenodochial", "youthful", "zealous",
    "zen",
)

# Notable scientists, mathematicians, engineers and hackers.
SURNAMES = (
    "agnesi", "alhazen", "allen", "ampere", "archimedes", "aryabhata",
    "avogadro", "babbage", "backus", "banach", "bardeen", "bartik", "bassi",
    "bell", "bernoulli", "bhabha", "blackwell", "bohr", "boltzmann",
    "boole", "born", "bose", "bouman", "boyle", "bragg", "brahe",
    "brahmagupta", "brattain", "burnell", "cannon", "cantor", "carson",
    "carver", "cauchy", "cavendish", "cerf", "chandrasekhar", "chebyshev",
    "clarke", "conway", "copernicus", "corbato", "cori", "coulomb", "cray",
    "crick", "curie", "dalton", "darwin", "dedekind", "diffie", "dijkstra",
    "dirac", "doppler", "easley", "edison", "einstein", "elion",
    "engelbart", "euclid", "euler", "faraday", "fermat", "fermi", "feynman",
    "fibonacci", "fleming", "fourier", "franklin", "fresnel", "galileo",
    "galois", "gauss", "germain", "gibbs", "gilbert", "godel", "goldberg",
    "goldwasser", "goodall", "halley", "hamilton", "hamming", "hawking",
    "heisenberg", "hellman", "hertz", "hilbert", "hoare", "hodgkin",
    "hooke", "hopper", "hubble", "huygens", "hypatia", "jackson", "jemison",
    "jennings", "johnson", "joule", "kahan", "kalam", "kay", "kelvin",
    "kepler", "kernighan", "khayyam", "khorana", "kilby", "kirchhoff",
    "knuth", "kovalevskaya", "lagrange", "lamarr", "lamport", "laplace",
    "lavoisier", "leakey", "leavitt", "leibniz", "lemaitre", "liskov",
    "lister", "lorentz", "lovelace", "lovell", "marconi", "maxwell",
    "mccarthy", "mcclintock", "meitner", "mendel", "mendeleev", "merkle",
    "michelson", "milner", "minsky", "mirzakhani", "moore", "morse",
    "napier", "nash", "naur", "neumann", "newton", "nobel", "noether",
    "noyce", "nyquist", "ohm", "oppenheimer", "pascal", "pasteur", "pauli",
    "pauling", "payne", "perlman", "pike", "planck", "poincare", "ptolemy",
    "raman", "ramanujan", "ride", "riemann", "ritchie", "rivest",
    "roentgen", "rubin", "rutherford", "sagan", "salk", "sammet",
    "schrodinger", "shamir", "shannon", "shockley", "snell", "somerville",
    "stallman", "stroustrup", "sutherland", "swartz", "tesla", "thompson",
    "torricelli", "torvalds", "tu", "turing", "vaughan", "volta", "wallace",
    "watt", "wiles", "williams", "wilson", "wing", "wirth", "wozniak",
    "wright", "wu", "yalow", "yonath", "zuse",
)

_MAX_ATTEMPTS = 6  # like the docker daemon, before it falls back to the short ID


def _randbelow(n: int) -> int:
    return int.from_bytes(os.urandom(4), "little") % n


def _generate(retry: int) -> str:
    while True:
        name = ADJECTIVES[_randbelow(len(ADJECTIVES))] + "_" + SURNAMES[_randbelow(len(SURNAMES))]
        if name != "boring_wozniak":  # Steve Wozniak is not boring
            break
    if retry > 0:
        name += str(_randbelow(10))
    return name


def random_name(taken=None, retry: int = 0) -> str:
    """A random "adjective_surname" name, with a digit appended once
    retrying (docker's namesgenerator.GetRandomName).

    `taken(name) -> bool` lets the caller reject names in use; after a few
    attempts this raises ValueError and the caller should fall back to the
    container's short ID as docker does."""
    if taken is None:
        return _generate(retry)
    for attempt in range(retry, retry + _MAX_ATTEMPTS):
        name = _generate(attempt)
        if not taken(name):
            return name
    raise ValueError("could not generate a unique container name")


_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_REST = _NAME_FIRST | frozenset("_.-")


def valid_name(name: str) -> bool:
    """Docker's container name rule: /?[a-zA-Z0-9][a-zA-Z0-9_.-]+"""
    name = name.removeprefix("/")
    return (len(name) >= 2 and name[0] in _NAME_FIRST
            and all(c in _NAME_REST for c in name[1:]))
