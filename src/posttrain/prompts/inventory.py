"""The base-task inventory: topics x task types, from which every synthetic prompt starts.

CGPO (App. A) drew one of 39 topics per prompt; the topic list itself is not published, so these 40 are ours.
Each topic carries concrete subjects (noun phrases that read well after "about", "Explain" or "Is ... worth it?")
and topic words, used as required / forbidden / repeated keywords so keyword constraints stay on topic.

Each task type carries the lengths a good answer naturally has (words, paragraphs, bullets, sections); the
constraint kwargs that count things are sampled inside these ranges, so "a poem of at least 600 words" or
"an essay of fewer than 40 words" never appears. `avoid` lists constraints that make no sense for the task,
`only_for` in `combos.py` lists constraints that need a particular task (a yes/no answer needs a question).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from posttrain.constraint_ids import JSON_FORMAT, NUMBER_SENTENCES


@dataclass(frozen=True)
class Topic:
    name: str
    subjects: tuple[str, ...]
    words: tuple[str, ...]  # single lowercase topic words, for keyword constraints


@dataclass(frozen=True)
class TaskType:
    name: str
    templates: tuple[str, ...]  # each has one `{subject}`
    words: tuple[int, int]  # natural length of a good answer, in words
    paragraphs: tuple[int, int]
    bullets: tuple[int, int]
    sections: tuple[int, int]
    avoid: frozenset[str] = field(default_factory=frozenset)
    keywords: tuple[str, ...] = ()  # words that identify a seed task as this type


def _topic(name: str, subjects: str, words: str) -> Topic:
    return Topic(name, tuple(s.strip() for s in subjects.split(";")), tuple(words.split()))


TOPICS: tuple[Topic, ...] = (
    _topic("cooking", "a weeknight pasta recipe; baking sourdough bread at home; meal prepping for a busy week; "
           "cooking with cast iron pans; making soup from leftovers; a family dinner tradition",
           "kitchen recipe flavor ingredient oven spice dinner taste"),
    _topic("travel", "a weekend trip to Lisbon; backpacking through Patagonia; traveling with only a carry-on; "
           "a night train across Europe; visiting national parks in winter; planning a road trip on a budget",
           "journey passport luggage destination map airport hotel adventure"),
    _topic("personal finance", "building an emergency fund; paying off credit card debt; budgeting for a first "
           "apartment; saving for retirement in your twenties; tracking monthly expenses; negotiating a raise",
           "budget savings money income expense debt interest bank"),
    _topic("health and fitness", "starting a running habit; strength training for beginners; stretching after "
           "work; walking ten thousand steps a day; recovering from a sports injury; training for a first marathon",
           "exercise muscle workout strength heart training energy routine"),
    _topic("nutrition", "eating more vegetables; reading food labels; cutting back on sugar; planning a high "
           "protein breakfast; drinking enough water; snacking well at the office",
           "vitamin protein diet fiber sugar meal healthy calories"),
    _topic("mental health", "managing exam stress; taking a digital detox; keeping a gratitude journal; setting "
           "boundaries at work; coping with loneliness in a new city; a daily mindfulness practice",
           "stress calm anxiety mind rest balance feelings support"),
    _topic("education", "learning a second language as an adult; online courses versus classrooms; a school "
           "without homework; teaching kids to code; the value of field trips; studying for final exams",
           "student teacher school lesson learning classroom study knowledge"),
    _topic("technology", "switching to a new smartphone; smart home devices; protecting your passwords; the "
           "history of the internet; repairing an old laptop; choosing a cloud backup service",
           "device software internet data screen battery computer digital"),
    _topic("artificial intelligence", "chatbots in customer service; self-driving cars; AI tools for writers; "
           "machine translation; recommendation algorithms; teaching a computer to play chess",
           "model algorithm data machine prediction robot neural automation"),
    _topic("programming", "learning Python as a first language; writing unit tests; code reviews in a small team; "
           "debugging a slow web page; version control with git; naming variables well",
           "code function bug program compiler variable syntax developer"),
    _topic("science", "how vaccines train the immune system; why the sky is blue; the water cycle; how "
           "telescopes work; photosynthesis; the discovery of penicillin",
           "experiment theory energy atom cell research evidence laboratory"),
    _topic("space exploration", "the first moon landing; living on the International Space Station; sending "
           "humans to Mars; searching for exoplanets; space tourism; the James Webb telescope",
           "rocket planet orbit astronaut galaxy mission moon gravity"),
    _topic("environment", "reducing plastic at home; protecting wetlands; composting kitchen scraps; planting "
           "trees in cities; cleaning up a local beach; saving water in the garden",
           "climate pollution recycling forest ocean waste nature carbon"),
    _topic("climate change", "rising sea levels; heat waves in cities; switching to renewable energy; carbon "
           "footprints of flights; electric buses; adapting farms to drought",
           "warming emissions carbon temperature energy drought glacier future"),
    _topic("history", "the invention of the printing press; daily life in ancient Rome; the Silk Road; the "
           "building of the pyramids; the fall of the Berlin Wall; the first public libraries",
           "empire ancient century war king trade museum archive"),
    _topic("art", "painting with watercolors; visiting an art museum for the first time; street murals; "
           "the life of Frida Kahlo; collecting prints on a budget; sculpture in public parks",
           "canvas painting color gallery artist brush sketch portrait"),
    _topic("music", "learning the guitar at forty; the history of jazz; making a playlist for a road trip; "
           "joining a community choir; vinyl records; writing a first song",
           "melody rhythm song guitar concert band lyrics piano"),
    _topic("movies and television", "binge watching a series; silent films; the role of a film editor; a "
           "classic science fiction movie; movie theaters versus streaming; adapting books into films",
           "film scene actor director screen episode audience camera"),
    _topic("literature", "reading poetry aloud; joining a book club; the first novel you loved; writing a "
           "memoir; libraries in small towns; classic novels for teenagers",
           "novel author chapter reader poetry story library character"),
    _topic("sports", "the rules of cricket; coaching a youth soccer team; the Olympic Games; learning to "
           "swim as an adult; rock climbing; a comeback in a championship final",
           "team coach match goal player season score stadium"),
    _topic("gaming", "board game nights; speedrunning; games that teach history; esports tournaments; "
           "designing a card game; retro consoles",
           "player level console strategy puzzle score controller quest"),
    _topic("business", "opening a small bakery; writing a business plan; remote work policies; customer "
           "loyalty programs; pricing a new product; running a family business",
           "customer profit market sales company product strategy growth"),
    _topic("entrepreneurship", "launching a side project; pitching to investors; failing fast; finding a "
           "co-founder; building a product people want; bootstrapping a startup",
           "startup founder idea investor launch risk pitch venture"),
    _topic("careers", "preparing for a job interview; changing careers at forty; writing a strong resume; "
           "asking for feedback; starting an internship; working a first day at a new job",
           "job interview resume manager skills career office salary"),
    _topic("workplace", "running better meetings; open plan offices; a four day work week; onboarding new "
           "colleagues; giving constructive feedback; working across time zones",
           "meeting colleague team project deadline office email schedule"),
    _topic("parenting", "bedtime routines for toddlers; screen time for children; teaching kids to save "
           "money; a family game night; raising bilingual children; helping with homework",
           "child parent family toddler bedtime school play patience"),
    _topic("relationships", "staying close to friends who moved away; a first date; resolving an argument; "
           "long distance relationships; making friends as an adult; apologizing well",
           "friend trust partner conversation love respect honesty together"),
    _topic("pets", "adopting a rescue dog; caring for a senior cat; training a puppy; keeping backyard "
           "chickens; choosing a first aquarium; traveling with pets",
           "dog cat pet vet food walk leash shelter"),
    _topic("gardening", "growing tomatoes on a balcony; starting a vegetable garden; caring for houseplants; "
           "attracting bees to the garden; pruning fruit trees; a community garden",
           "soil seed plant flower water garden harvest compost"),
    _topic("home and housing", "decluttering a small apartment; renting versus buying; fixing a leaky faucet; "
           "moving to a new city; designing a cozy reading corner; living with roommates",
           "home rent kitchen room furniture neighbor apartment house"),
    _topic("transportation", "commuting by bicycle; high speed rail; car sharing; public transit at night; "
           "electric scooters in cities; learning to drive",
           "bus train bicycle traffic commute road station ticket"),
    _topic("cities and urban life", "pedestrian streets; city parks; night markets; noise in apartments; "
           "living in a small town versus a big city; public libraries as community centers",
           "street park neighborhood city market square downtown community"),
    _topic("law and civics", "serving on a jury; voting for the first time; the role of local government; "
           "reading a rental contract; freedom of the press; volunteering at a polling station",
           "law vote court citizen rights government contract justice"),
    _topic("philosophy", "the meaning of a good life; free will; the trolley problem; stoicism in daily life; "
           "honesty and white lies; what makes a friendship last",
           "ethics meaning reason virtue truth question mind belief"),
    _topic("fashion", "building a capsule wardrobe; sustainable fashion; choosing shoes for a wedding; "
           "vintage clothing; school uniforms; mending clothes",
           "style clothing fabric color outfit shoes wardrobe design"),
    _topic("holidays and celebrations", "planning a surprise birthday party; a small wedding; new year "
           "resolutions; hosting a holiday dinner; a neighborhood festival; celebrating a retirement",
           "party guests gift celebration cake music invitation festival"),
    _topic("hobbies and crafts", "knitting a first scarf; building model trains; learning photography; "
           "woodworking for beginners; keeping a sketchbook; bird watching",
           "craft hobby project tools photo pattern practice patience"),
    _topic("food culture", "street food in Bangkok; the history of coffee; farmers markets; the perfect "
           "pizza; regional barbecue styles; tea ceremonies",
           "coffee market cuisine tradition street taste restaurant recipe"),
    _topic("ocean and marine life", "coral reefs; whale migration; scuba diving for beginners; overfishing; "
           "life in tide pools; lighthouses",
           "ocean reef whale fish coast wave diving tide"),
    _topic("volunteering and community", "organizing a neighborhood cleanup; volunteering at a food bank; "
           "mentoring a teenager; starting a tool library; donating blood; helping elderly neighbors",
           "volunteer community neighbor help donation support local service"),
)

TASK_TYPES: tuple[TaskType, ...] = (
    TaskType("email", ("Write an email to a colleague about {subject}.",
                       "Draft an email to my manager about {subject}.",
                       "Compose a friendly email inviting my neighbors to talk about {subject}.",
                       "Write an email to a friend sharing your thoughts on {subject}."),
             words=(80, 300), paragraphs=(2, 5), bullets=(2, 5), sections=(2, 3), keywords=("email", "e-mail")),
    TaskType("letter", ("Write a letter to the editor of a local newspaper about {subject}.",
                        "Write a letter to your younger self about {subject}.",
                        "Write a thank-you letter to a mentor that mentions {subject}."),
             words=(120, 400), paragraphs=(2, 5), bullets=(2, 5), sections=(2, 3), keywords=("letter",)),
    TaskType("story", ("Write a short story about {subject}.",
                       "Tell a story in which a character's life is changed by {subject}.",
                       "Write a bedtime story for a ten-year-old about {subject}.",
                       "Write a piece of flash fiction centered on {subject}."),
             words=(200, 700), paragraphs=(3, 7), bullets=(2, 4), sections=(2, 4),
             avoid=frozenset({JSON_FORMAT}), keywords=("story", "fiction", "tale")),
    TaskType("essay", ("Write an essay about {subject}.",
                       "Write a persuasive essay arguing for {subject}.",
                       "Write a reflective essay on what {subject} taught you.",
                       "Write a short essay weighing the pros and cons of {subject}."),
             words=(300, 900), paragraphs=(3, 7), bullets=(3, 6), sections=(2, 5), keywords=("essay",)),
    TaskType("blog_post", ("Write a blog post about {subject}.",
                           "Write a blog post for beginners on {subject}.",
                           "Write a personal blog post about my experience with {subject}."),
             words=(250, 800), paragraphs=(3, 7), bullets=(3, 8), sections=(2, 5), keywords=("blog",)),
    TaskType("list", ("List practical tips for {subject}.",
                      "Make a list of common mistakes people make with {subject}.",
                      "Give me a list of reasons to care about {subject}.",
                      "Write a checklist for {subject}."),
             words=(60, 300), paragraphs=(1, 3), bullets=(3, 10), sections=(1, 3), keywords=("list", "checklist", "tips")),
    TaskType("guide", ("Write a step-by-step guide to {subject}.",
                       "Write a beginner's how-to guide on {subject}.",
                       "Explain, step by step, how to get started with {subject}."),
             words=(200, 700), paragraphs=(3, 6), bullets=(3, 8), sections=(2, 5), keywords=("guide", "how to", "how-to", "step")),
    TaskType("explanation", ("Explain {subject} to a beginner.",
                             "Explain {subject} to a curious twelve-year-old.",
                             "What should a newcomer understand about {subject}? Explain clearly.",
                             "Give a clear explanation of {subject}."),
             words=(120, 500), paragraphs=(2, 5), bullets=(2, 6), sections=(2, 4), keywords=("explain", "why", "what is")),
    TaskType("dialogue", ("Write a dialogue between two friends discussing {subject}.",
                          "Write a conversation between a teacher and a student about {subject}.",
                          "Write a short scene in which two strangers argue about {subject}."),
             words=(120, 450), paragraphs=(2, 6), bullets=(2, 4), sections=(2, 3),
             avoid=frozenset({JSON_FORMAT}), keywords=("dialogue", "conversation", "scene")),
    TaskType("poem", ("Write a poem about {subject}.",
                      "Write a short poem celebrating {subject}.",
                      "Write a funny poem about {subject}.",
                      "Write a poem for children about {subject}."),
             words=(40, 200), paragraphs=(2, 5), bullets=(2, 4), sections=(2, 3),
             avoid=frozenset({JSON_FORMAT, NUMBER_SENTENCES}),
             keywords=("poem", "haiku", "limerick", "verse", "sonnet", "rhyme")),
    TaskType("speech", ("Write a speech for a school assembly about {subject}.",
                        "Write a toast for a community dinner that mentions {subject}.",
                        "Write a short motivational speech about {subject}."),
             words=(200, 700), paragraphs=(3, 6), bullets=(2, 5), sections=(2, 4),
             avoid=frozenset({JSON_FORMAT}), keywords=("speech", "toast", "talk")),
    TaskType("review", ("Write a review of a book about {subject}.",
                        "Write a review of a workshop on {subject}.",
                        "Write a review of a podcast episode about {subject}."),
             words=(120, 450), paragraphs=(2, 5), bullets=(2, 6), sections=(2, 4), keywords=("review", "rate")),
    TaskType("product_description", ("Write a product description for a kit that helps with {subject}.",
                                     "Write an advertisement for an app built around {subject}.",
                                     "Write a product description for a course on {subject}."),
             words=(60, 250), paragraphs=(1, 4), bullets=(3, 7), sections=(1, 3),
             keywords=("product", "advert", "ad ", "pitch", "slogan")),
    TaskType("social_post", ("Write a social media post about {subject}.",
                             "Write a short post for a community forum asking for advice on {subject}.",
                             "Write a tweet-length announcement about {subject}."),
             words=(25, 90), paragraphs=(1, 3), bullets=(2, 4), sections=(1, 2), keywords=("tweet", "post", "caption")),
    TaskType("faq", ("Write a FAQ page about {subject}.",
                     "Write five questions and answers about {subject}.",
                     "Write an interview with an expert on {subject}."),
             words=(150, 500), paragraphs=(3, 6), bullets=(3, 8), sections=(3, 5), keywords=("faq", "interview", "q&a")),
    TaskType("question", ("Is {subject} worth the effort for a beginner? Give your opinion.",
                          "Should a busy person bother with {subject}? Give a verdict.",
                          "Would you recommend {subject} to a friend? Say what you think."),
             words=(40, 250), paragraphs=(1, 3), bullets=(2, 4), sections=(1, 2),
             keywords=("should", "is it", "would you", "do you think", "?")),
)

TASKS_BY_NAME = {t.name: t for t in TASK_TYPES}
TOPICS_BY_NAME = {t.name: t for t in TOPICS}

# For a seed task whose type is unknown: a generic range that fits most written answers.
GENERIC_TASK = TaskType("generic", ("{subject}",), words=(100, 400), paragraphs=(2, 5), bullets=(2, 6), sections=(2, 4))

_WORD = re.compile(r"[a-z]+")


def infer_task_type(text: str) -> TaskType:
    """The task type a free-text seed task most likely is (by its first identifying keyword), else generic."""
    lowered = text.lower()
    best: tuple[int, TaskType] | None = None
    for task in TASK_TYPES:
        for keyword in task.keywords:
            position = lowered.find(keyword)
            if position >= 0 and (best is None or position < best[0]):
                best = (position, task)
    return best[1] if best else GENERIC_TASK


def topic_words_of(text: str) -> tuple[str, ...]:
    """Content words of a seed task, used as keyword-constraint candidates (longest first, stopwords dropped)."""
    words = dict.fromkeys(w for w in _WORD.findall(text.lower()) if len(w) >= 5 and w not in _STOPWORDS)
    return tuple(sorted(words, key=len, reverse=True)[:8])


_STOPWORDS = frozenset(
    "about above after again against because before being below between could doing during every having "
    "other should their there these those through under until where which while would write please short "
    "answer response explain describe something someone things think".split()
)
