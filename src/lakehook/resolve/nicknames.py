"""Given-name variants: nicknames and short forms mapped to one canonical given name.

Written for lakehook (no third-party list): common English short forms plus frequent
spelling variants. A variant that serves several formal names (``alex``, ``chris``) maps
to the most common one; the scorer treats a shared canonical name as a weaker match
than an identical name, so this coarseness costs little.
"""

from __future__ import annotations

#: canonical given name → its variants (lower case, no accents)
_GROUPS: dict[str, tuple[str, ...]] = {
    "abigail": ("abby", "abbie", "gail"),
    "albert": ("al", "bert", "bertie"),
    "alexander": ("alex", "alec", "sasha", "xander", "alexandra", "alexa", "lexi"),
    "alfred": ("alf", "alfie"),
    "allison": ("alison", "ally", "allie"),
    "amanda": ("mandy", "manda"),
    "andrew": ("andy", "drew", "andre"),
    "angela": ("angie",),
    "anthony": ("tony", "ant", "antonio"),
    "arthur": ("art", "artie"),
    "barbara": ("barb", "babs", "barbie"),
    "benjamin": ("ben", "benny", "benji"),
    "bernard": ("bernie",),
    "beverly": ("bev",),
    "bradley": ("brad",),
    "brian": ("bryan", "bri"),
    "catherine": ("cathy", "cath", "kate", "katie", "kathy", "katherine", "kathryn", "kat"),
    "charles": ("charlie", "chuck", "chas", "chaz"),
    "christina": ("tina", "christine", "chrissy", "kristina", "kristin", "kristen"),
    "christopher": ("chris", "kit", "topher"),
    "cynthia": ("cindy",),
    "daniel": ("dan", "danny"),
    "david": ("dave", "davey", "davy"),
    "deborah": ("debbie", "deb", "debra", "debby"),
    "donald": ("don", "donnie"),
    "dorothy": ("dot", "dottie", "dolly"),
    "douglas": ("doug",),
    "edward": ("ed", "eddie", "ted", "teddy", "ned", "eddy"),
    "elizabeth": ("liz", "lizzie", "beth", "betty", "eliza", "libby", "betsy", "elisabeth"),
    "eleanor": ("ellie", "nora", "elly"),
    "emily": ("em", "emmy", "millie"),
    "eugene": ("gene",),
    "frances": ("fran", "frannie"),
    "francis": ("frank", "frankie"),
    "frederick": ("fred", "freddie", "freddy"),
    "gabriel": ("gabe",),
    "gerald": ("gerry", "jerry"),
    "gregory": ("greg",),
    "harold": ("hal", "harry"),
    "henry": ("hank", "hal"),
    "isabella": ("bella", "izzy", "isabel", "isabelle"),
    "jacob": ("jake", "jay"),
    "james": ("jim", "jimmy", "jamie", "jimbo"),
    "janet": ("jan",),
    "jeffrey": ("jeff", "geoffrey", "geoff"),
    "jennifer": ("jen", "jenny", "jenn", "jennie"),
    "jessica": ("jess", "jessie"),
    "john": ("jack", "johnny", "jon", "jonny"),
    "jonathan": ("jonny",),
    "joseph": ("joe", "joey"),
    "joshua": ("josh",),
    "judith": ("judy", "jude"),
    "katrina": ("trina",),
    "kenneth": ("ken", "kenny"),
    "lawrence": ("larry", "laurence"),
    "leonard": ("leo", "len", "lenny"),
    "louis": ("lou", "louie", "lewis"),
    "margaret": ("maggie", "meg", "peggy", "marge", "margie", "greta", "madge"),
    "matthew": ("matt", "matty"),
    "melissa": ("mel", "missy", "lisa"),
    "michael": ("mike", "mikey", "mick", "mickey", "mitch"),
    "nathaniel": ("nate", "nat"),
    "nicholas": ("nick", "nicky", "nico", "nicolas"),
    "nicole": ("nikki", "nicky"),
    "pamela": ("pam",),
    "patricia": ("pat", "patty", "tricia", "trish", "patsy"),
    "patrick": ("paddy",),
    "peter": ("pete",),
    "philip": ("phil", "phillip", "pip"),
    "rebecca": ("becky", "becca", "bex"),
    "richard": ("rich", "rick", "ricky", "dick", "richie"),
    "robert": ("rob", "bob", "bobby", "robbie", "bert", "robby"),
    "ronald": ("ron", "ronnie"),
    "samantha": ("sammie",),
    "samuel": ("sam", "sammy"),
    "sandra": ("sandy",),
    "stephanie": ("steph", "stephie"),
    "stephen": ("steve", "steven", "stevie"),
    "susan": ("sue", "susie", "suzy", "suzanne"),
    "theodore": ("theo",),
    "thomas": ("tom", "tommy", "thom"),
    "timothy": ("tim", "timmy"),
    "valerie": ("val",),
    "victoria": ("vicky", "vicki", "tori", "vic"),
    "vincent": ("vince", "vinny"),
    "walter": ("walt", "wally"),
    "william": ("will", "bill", "billy", "willy", "willie", "liam"),
    "zachary": ("zach", "zack", "zac"),
}


def _build_canonical() -> dict[str, str]:
    canonical: dict[str, str] = {}
    for formal, variants in _GROUPS.items():
        canonical.setdefault(formal, formal)
        for variant in variants:
            # first group listing a variant wins: the more common formal name comes first
            canonical.setdefault(variant, formal)
    return canonical


CANONICAL_GIVEN_NAME: dict[str, str] = _build_canonical()


def canonical_given_name(name: str) -> str:
    """The canonical form of a normalised given name (``bob`` → ``robert``).

    Args:
        name: A given name already lower-cased and stripped of accents.

    Returns:
        The canonical formal name, or the name itself when it has no known variants.
    """
    return CANONICAL_GIVEN_NAME.get(name, name)
