"""The word lists and sentence templates the demo generator plants in its corpus.

Kept apart from the generator so the planted structure can be read (and changed) in one place.
Every token is lowercase and free of punctuation, so any Unicode-aware tokenizer splits the
generated text exactly on spaces and the planted words survive tokenization unchanged.

Template slots (``{name}``) are filled per document by :mod:`embedpipe.demo.generator`:

* countries family (one country/capital pair per document): ``country``, ``capital``,
  ``nationality``, ``local`` (one of the pair's four own words) and ``landmark``/``dish``/``river``/
  ``person`` all belong to the *same* pair, so the relation country -> capital is consistent;
  ``country2``/``capital2`` are random other pairs and ``good``/``cityword`` random words shared by
  the whole class, so countries share contexts with countries and capitals with capitals. The
  padding of these documents also draws on the pair's own words ("topic" words).
* animals family: ``animal`` (the document's animal), ``animal2`` (any animal), ``part``, ``food``;
  the padding draws on :data:`ANIMAL_CONTEXT`, parts and foods, so animals end up near "vet".
* movies family: ``movie`` (the document's movie), ``movie2`` (another movie of the same segment),
  ``aud`` (a word of the movie's audience), ``style`` (a word of the movie's style).
* korean family: ``ko_country``/``ko_capital`` of one Korean-script pair.
"""

from __future__ import annotations

# country, capital, nationality adjective, then four words only that pair uses (landmark, dish, river,
# famous name): shared by a country and its capital, they give each pair the specific component that
# makes vec(capital) - vec(country) the same offset for every pair.
COUNTRY_TABLE: tuple[tuple[str, str, str, str, str, str, str], ...] = (
    ("france", "paris", "french", "eiffel", "croissant", "seine", "napoleon"),
    ("germany", "berlin", "german", "brandenburg", "bratwurst", "spree", "goethe"),
    ("italy", "rome", "italian", "colosseum", "pasta", "tiber", "dante"),
    ("spain", "madrid", "spanish", "prado", "paella", "manzanares", "cervantes"),
    ("japan", "tokyo", "japanese", "shibuya", "sushi", "sumida", "samurai"),
    ("korea", "seoul", "korean", "gyeongbokgung", "kimchi", "hangang", "sejong"),
    ("egypt", "cairo", "egyptian", "pyramids", "koshari", "nile", "pharaoh"),
    ("russia", "moscow", "russian", "kremlin", "borscht", "moskva", "tolstoy"),
    ("canada", "ottawa", "canadian", "niagara", "poutine", "rideau", "maple"),
    ("china", "beijing", "chinese", "tiananmen", "dumplings", "yongding", "confucius"),
    ("greece", "athens", "greek", "acropolis", "souvlaki", "kifisos", "plato"),
    ("portugal", "lisbon", "portuguese", "belem", "bacalhau", "tejo", "magellan"),
    ("poland", "warsaw", "polish", "lazienki", "pierogi", "vistula", "chopin"),
    ("norway", "oslo", "norwegian", "fjords", "lutefisk", "akerselva", "ibsen"),
    ("sweden", "stockholm", "swedish", "vasa", "meatballs", "malaren", "nobel"),
    ("austria", "vienna", "austrian", "schonbrunn", "schnitzel", "danube", "mozart"),
    ("ireland", "dublin", "irish", "guinness", "colcannon", "liffey", "joyce"),
    ("kenya", "nairobi", "kenyan", "safari", "ugali", "athi", "kenyatta"),
    ("peru", "lima", "peruvian", "miraflores", "ceviche", "rimac", "inca"),
    ("cuba", "havana", "cuban", "malecon", "mojito", "almendares", "castro"),
)

# Korean-script pairs (capital, country): exercise Unicode tokenization and a separate analogy section.
KOREAN_TABLE: tuple[tuple[str, str], ...] = (
    ("서울", "한국"),
    ("도쿄", "일본"),
    ("베이징", "중국"),
    ("파리", "프랑스"),
    ("베를린", "독일"),
    ("로마", "이탈리아"),
    ("카이로", "이집트"),
    ("모스크바", "러시아"),
)

GOODS = ("cars", "wine", "steel", "oil", "grain", "textiles", "machines", "coffee", "fish", "timber")
CITY_WORDS = ("harbour", "airport", "museum", "subway", "stadium", "square", "market", "bridge")

ANIMALS = (
    "cat", "dog", "horse", "rabbit", "hamster", "parrot", "cow", "sheep",
    "goat", "pig", "chicken", "duck", "mouse", "turtle", "ferret", "donkey",
)
ANIMAL_PARTS = ("fur", "paws", "tail", "whiskers", "feathers", "claws")
ANIMAL_FOODS = ("hay", "seeds", "grass", "pellets", "carrots", "oats")
# The words that keep animals company: what "animals near vet" means.
ANIMAL_CONTEXT = ("vet", "clinic", "pet", "feed", "barn", "sick", "healthy", "owners")

AUDIENCES = ("children", "adult")
STYLES = ("blockbuster", "arthouse")
AUDIENCE_WORDS = {
    "children": ("kids", "family", "cartoon", "animated", "children"),
    "adult": ("mature", "violent", "thriller", "adult", "gritty"),
}
STYLE_WORDS = {
    "blockbuster": ("blockbuster", "sequel", "franchise", "spectacular", "explosions"),
    "arthouse": ("arthouse", "indie", "festival", "subtitled", "experimental"),
}
CORPUS_MOVIES = 48  # 12 per (audience, style) segment

# Frequent background words (Zipf ranks 1..n); a long tail of invented words follows them.
COMMON_WORDS = (
    "the of and to in a is that for it was on with as he be at by this had not are but from or have "
    "an they which one you were her all she there would their we him been has when who will more no "
    "if out so said what up its about into than them can only other new some could time these two may "
    "then do first any my now such like our over man me even most made after also did many before must "
    "through back years where much your way well down should because each just those people how too "
    "little state good very make world still own see men work long get here between both life being "
    "under never day same another know while last might us great old year off come since against go "
    "came right used take three"
).split()

# Sentence templates per family, each at most 9 tokens so documents stay 10-14 tokens with filler.
COUNTRY_TEMPLATES = (
    # relation: a country and its capital together, always in the same roles
    "{capital} is the capital of {country}",
    "the government of {country} sits in {capital}",
    "flights from {capital} connect {country} with the world",
    "visitors to {country} admire {local} in {capital}",
    # countries with countries, and with what only they have
    "{country} exports {good} and {good} to {country2}",
    "the economy of {country} grew faster than {country2}",
    "the president of {country} met the leaders of {country2}",
    "{country} is proud of {local} and {local}",
    "tourists travel to {country} to see {local}",
    # capitals with capitals, and with what only they have
    "the city of {capital} has a busy {cityword}",
    "a train links {capital} and {capital2} every hour",
    "the mayor of {capital} opened a new {cityword}",
    "the streets of {capital} were crowded near {local}",
    "{capital} is a big city with millions of residents",
    "rents in {capital} keep rising every year",
    # nationality adjectives
    "the {nationality} people of {country} love {local}",
    "she speaks {nationality} and knows all about {local}",
    "a {nationality} writer grew up in {country}",
    # the pair's own words with their kind (so a dish is also like other dishes, not only like its country)
    "my grandmother cooked {dish} from an old recipe",
    "the {river} river floods its banks in spring",
    "historians wrote many books about {person}",
    "the {landmark} monument is centuries old",
)
ANIMAL_TEMPLATES = (
    "the vet examined the {animal} at the clinic",
    "feed your pet {animal} fresh {food} every morning",
    "my {animal} has soft {part} and a long {part}",
    "take the sick {animal} to the vet today",
    "the {animal} and the {animal2} sleep in the barn",
    "a healthy {animal} needs {food} and clean water",
    "{animal} owners often visit the animal clinic",
    "the vet said our {animal} is healthy again",
)
MOVIE_TEMPLATES = (
    "{movie} is a {aud} {style} movie",
    "critics called {movie} a {style} {aud} film",
    "{aud} audiences loved {movie} and its {style} story",
    "fans of {movie} also watched {movie2}",
    "the trailer for {movie} looked {style} and {aud}",
    "if you liked {movie2} watch {movie} next",
)
KOREAN_TEMPLATES = (
    "{ko_capital} 은 {ko_country} 의 수도 이다",
    "{ko_country} 의 수도 는 {ko_capital} 입니다",
    "{ko_capital} 에서 {ko_country} 음식 을 먹었다",
    "{ko_country} 는 아름다운 나라 이다",
    "{ko_capital} 은 아주 큰 도시 이다",
)

# Listings (regression demo): price = base + per-bedroom + the effects of the words present + noise.
LISTING_KINDS = ("apartment", "house", "studio", "loft", "flat")
LISTING_EFFECTS = {
    "pool": 120.0,
    "view": 80.0,
    "downtown": 90.0,
    "garden": 60.0,
    "renovated": 50.0,
    "balcony": 40.0,
    "parking": 30.0,
    "noisy": -40.0,
    "basement": -60.0,
    "shared": -50.0,
    "tiny": -30.0,
}
LISTING_NEUTRAL = ("bright", "quiet", "cozy", "spacious", "modern", "charming", "near", "bus", "shops", "park")
