"""Summarise a Reddit post in a TL;DR (Ziegler et al., 2019, §4.2; Völske et al., 2017).

The embedded default is a corpus of Reddit-style advice posts generated here from a seeded
grammar, each with an explicit latent structure:

- an optional preamble (greetings, apologies for formatting or mobile, throwaway accounts,
  "long time lurker"), which opens the post and is no part of the story, so lead-3 is weak;
- the key facts, in order: who (the poster and the other person, "I (24F)", names,
  relationship, how long), what happened, the problem it causes, and the question asked;
- distractors between them (hobbies, pets, weather, unrelated people and numbers) and
  closing lines ("Thanks in advance.");
- a reference TL;DR written from the key facts only.

Each fact is realised from several phrasings, slots drawn per post (names, ages, sums, places,
what exactly happened) and many topics, so the TL;DR depends on the post's content, not on a
template. Keywords of a fact are the content tokens its post sentence shares with its
TL;DR sentence, so the reference covers every fact.

Real data: the default columns read the trl-lib/tldr schema ({"prompt", "completion"}), whose
prompt is already "SUBREDDIT: r/…\\n\\nTITLE: …\\n\\nPOST: …\\n\\nTL;DR:"; such prompts are
split into subreddit, title and post (meta "subreddit", "title"; the post is the source). For
the OpenAI jsonl files (id, subreddit, title, post, summary) map
columns={source: post, reference: summary, subreddit: subreddit, title: title}; for
webis/tldr-17 columns={source: content, reference: summary, subreddit: subreddit}. Add
"TITLE: {title}\\n\\n" to prompt_template to show titles to the policy.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from harness.errors import InputError
from harness.tasks.summarization import (
    Document,
    distinct_documents,
    Fact,
    GeneratorFn,
    SlotFiller,
    SummarizationTask,
    entities_in,
    grounded,
    make_document,
    shared_keywords,
)

MIN_WORDS, MAX_WORDS = 75, 190  # ≈ 100–250 tokens
MIN_REF_WORDS, MAX_REF_WORDS = 15, 40


class F(NamedTuple):
    """One key fact: ways the post states it, ways the TL;DR states it."""

    src: tuple[str, ...]
    ref: tuple[str, ...]


class Issue(NamedTuple):
    """What happened and the problem it causes; `others` overrides the topic's other person,
    `q` are questions (verb phrases) that fit this issue."""

    event: F
    problem: F
    others: tuple[tuple[str, str, int, int], ...] | None = None
    q: tuple[str, ...] = ()


@dataclass(frozen=True)
class Topic:
    """A kind of advice post. `others` are (relation, gender 'M'/'F'/'' for either, age offset
    range) of the other person; `questions` are verb phrases for "How do I …?"."""

    name: str
    subreddits: tuple[str, ...]
    others: tuple[tuple[str, str, int, int], ...]
    setups: tuple[F, ...]
    issues: tuple[Issue, ...]
    questions: tuple[str, ...]
    slots: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    distractors: tuple[str, ...] = ()


def _f(src: Sequence[str], ref: Sequence[str]) -> F:
    return F(tuple(src), tuple(ref))


PARTNERS = (("boyfriend", "M", -2, 6), ("girlfriend", "F", -4, 3), ("husband", "M", -1, 7),
            ("wife", "F", -4, 2), ("fiance", "M", -1, 5), ("fiancee", "F", -3, 3), ("partner", "", -3, 4))
SIBLINGS = (("brother", "M", -6, 6), ("sister", "F", -6, 6), ("cousin", "", -5, 5))
FRIENDS = (("best friend", "", -2, 2), ("friend", "", -3, 3), ("childhood friend", "", -1, 1),
           ("college friend", "", -2, 2))

TOPICS: tuple[Topic, ...] = (
    Topic(
        name="relationships",
        subreddits=("relationships", "relationship_advice"),
        others=PARTNERS,
        setups=(
            _f(["{me} have been [dating|with|seeing] my {rel} {name} {otag} for {dur}.",
                "My {rel} {name} {otag} and I {mytag} have been together for {dur}[ and live together| and just moved in together|].",
                "[For context,|Some background:|Okay so,] {me} and my {rel} {name} {otag} have been together for {dur}."],
               ["Me {mytag}, {rel} {otag}, together {dur}.", "My {rel} {otag} of {dur}.", "With my {rel} {otag} for {dur}."]),
        ),
        issues=(
            Issue(_f(["[Last week|On {day}|A few days ago] was my birthday and {he} completely forgot about it[, even though I reminded {him} the day before|].",
                      "{He} forgot my birthday [on {day}|last week|this year][, even though it was on our shared calendar|, for the second year in a row|]."],
                     ["{He} forgot my birthday.", "{He} completely forgot my birthday."]),
                  _f(["When I brought it up, {he} said I was {dismiss} about my birthday and that it's just another day.",
                      "Now {he} [is acting like|thinks] I'm {dismiss} about my birthday."],
                     ["{He} says I'm {dismiss} about my birthday.", "Now {he} thinks I'm {dismiss} about my birthday."]),
                  q=("get {him} to understand why my birthday matters to me", "explain that forgetting my birthday hurt",
                     "stop feeling hurt about my birthday")),
            Issue(_f(["A few weeks ago I noticed {he} has been texting {his} ex {exname} [almost every day|late at night|a lot].",
                      "I found out {he} has been texting {his} ex, {exname}, [almost every day|late at night] for [weeks|a month]."],
                     ["{He} keeps texting {his} ex {exname}.", "{He} has been texting {his} ex a lot."]),
                  _f(["{He} [says|insists] they're just friends, but {he} gets really defensive whenever I ask to see the messages.",
                      "When I asked about it {he} got defensive and said they're just friends."],
                     ["{He} gets defensive and says they're just friends.", "{He} claims they're just friends but gets defensive."]),
                  q=("ask {him} to stop texting {his} ex", "tell if I'm being paranoid about {his} ex",
                     "rebuild trust after finding those texts")),
            Issue(_f(["Lately I've been doing pretty much all of the {chore} while {he} {idle}.",
                      "For [months|a while now] I've been handling all the {chore}, and {he} {idle} every evening."],
                     ["I do all the {chore} while {he} {idle}.", "I handle all the {chore} and {he} {idle}."]),
                  _f(["I've asked {him} to help [a few times|more than once|multiple times] but {he} always says {he}'s too tired from work.",
                      "Every time I ask for help {he} says {he}'s too tired after work and promises to do it tomorrow."],
                     ["{He}'s always too tired to help.", "{He} says {he}'s too tired to help."]),
                  q=("get {him} to split the housework fairly", "stop doing all the chores myself")),
            Issue(_f(["Last month {he} spent {money} of our [shared|joint] savings on a {purchase} without telling me.",
                      "I just found out {he} took {money} out of our [joint|shared] savings to buy a {purchase}."],
                     ["{He} spent {money} of our savings on a {purchase}.", "{He} took {money} from our savings for a {purchase}."]),
                  _f(["That money was supposed to go toward {goal}, and now we're way behind.",
                      "We had been saving that money for {goal} for over a year."],
                     ["That money was for {goal}.", "We were saving that money for {goal}."]),
                  q=("rebuild our savings after this", "get {him} to respect our budget")),
            Issue(_f(["{His} parents invited us to spend {holiday} with them in {city}, and {he} said yes without even asking me.",
                      "Without asking me, {he} told {his} parents we'd spend {holiday} at their place in {city}."],
                     ["{He} agreed to {holiday} with {his} parents in {city} without asking.", "{He} promised {his} parents {holiday} in {city}."]),
                  _f(["The problem is I already promised my {myfam} I'd be home for {holiday} this year.",
                      "But I told my {myfam} months ago that I'd be home for {holiday}."],
                     ["I promised my {myfam} I'd be home.", "But I promised my {myfam} I'd be home for {holiday}."]),
                  q=("split the holidays between our families", "tell {his} parents we can't come for {holiday}")),
            Issue(_f(["{He} just got a job offer in {city} and wants us to move there [by {month}|this summer|in a few months].",
                      "Out of nowhere {he} accepted a job offer in {city} and expects us to move [by {month}|soon]."],
                     ["{He} got a job offer in {city} and wants us to move.", "{He} accepted a job in {city} and expects us to move."]),
                  _f(["My whole family is here and I just started my dream job as a {job} [in {month}|this spring].",
                      "I just started my dream job as a {job} and my whole family lives here."],
                     ["I just started my dream job as a {job} here.", "My family and my dream job are here."]),
                  q=("decide whether to move for {his} job", "choose between my career and {his} job offer")),
        ),
        questions=("talk to {him} calmly about this", "bring this up without starting a fight",
                   "figure out if this is a dealbreaker"),
        slots={"dismiss": ("overreacting", "being dramatic", "being too sensitive", "making a big deal"),
               "chore": ("cooking and cleaning", "housework", "dishes and laundry", "grocery shopping and cooking",
                         "cleaning and bills"),
               "idle": ("plays video games", "watches {show}", "scrolls on {his} phone", "naps on the couch"),
               "purchase": ("new gaming PC", "motorcycle", "designer watch", "used jet ski", "new set of golf clubs"),
               "goal": ("our wedding", "a house deposit", "a trip to {city2}", "paying off my car", "an emergency fund"),
               "myfam": ("mom", "dad", "parents", "grandma", "family")},
    ),
    Topic(
        name="dating",
        subreddits=("dating_advice", "dating", "Tinder"),
        others=(("match", "", -3, 5),),
        setups=(
            _f(["{me} matched with {name} {otag} on {app} about {dur2} ago.",
                "So {me} met {name} {otag} on {app} [about|around] {dur2} ago and we really hit it off.",
                "[Okay so|So], {me} started talking to a {guy} named {name} {otag} on {app} {dur2} ago."],
               ["I met {name} {otag} on {app} {dur2} ago.", "Matched with a {guy} {otag} on {app} {dur2} ago."]),
        ),
        issues=(
            Issue(_f(["We went on {ndates} dates and things seemed great, but since {day} {he} has stopped replying to my texts.",
                      "After {ndates} really fun dates {he} suddenly stopped replying to my texts [on {day}|last week]."],
                     ["After {ndates} dates {he} stopped replying.", "{He} stopped replying to my texts after {ndates} dates."]),
                  _f(["{He} is still posting on {social} every day, so {he} clearly isn't too busy to text.",
                      "What makes it worse is that {he}'s still posting on {social} all the time."],
                     ["{He}'s still posting on {social} every day.", "Still posting on {social} though."]),
                  q=("get closure after being ghosted", "stop checking {his} {social}")),
            Issue(_f(["On our {ordinal} date {he} picked a really expensive {cuisine} restaurant and the bill came to {money}.",
                      "For our {ordinal} date {he} chose a fancy {cuisine} restaurant where the bill was {money}."],
                     ["{He} picked a {money} {cuisine} restaurant for our {ordinal} date.", "Our {ordinal} date was a {money} {cuisine} restaurant."]),
                  _f(["When the check came {he} said {he} forgot {his} wallet, so I ended up paying for everything.",
                      "Then {he} 'forgot' {his} wallet and I ended up paying the whole bill."],
                     ["{He} forgot {his} wallet and I ended up paying.", "{He} 'forgot' {his} wallet so I was paying."]),
                  q=("bring up splitting the bill next time", "ask {him} to pay me back for dinner")),
            Issue(_f(["After only {ndates} dates {he} already {fast}.",
                      "We've been on {ndates} dates total and {he} {fast}."],
                     ["After {ndates} dates {he} {fast}.", "{He} {fast} after {ndates} dates."]),
                  _f(["I really like {him}, but it honestly feels like things are moving way too fast.",
                      "I do like {him}, things are just moving too fast for me."],
                     ["I like {him} but things are moving too fast.", "Things are moving too fast for me."]),
                  q=("tell {him} to slow down without ruining things", "slow things down without losing {him}")),
        ),
        questions=("decide whether to keep dating {him}", "figure out if {he}'s actually interested"),
        slots={"ndates": ("two", "three", "four", "five", "3", "4"),
               "ordinal": ("second", "third", "fourth"),
               "fast": ("wants me to meet {his} parents", "is talking about moving in together",
                        "said {he} loves me", "wants to plan a trip to {city} together")},
    ),
    Topic(
        name="roommates",
        subreddits=("roommates", "Advice", "relationship_advice"),
        others=(("roommate", "", -3, 4), ("housemate", "", -3, 4), ("flatmate", "", -3, 4)),
        setups=(
            _f(["{me} have been living with my {rel} {name} {otag} for {dur} in a [two|three]-bedroom [apartment|place].",
                "My {rel} {name} {otag} and I {mytag} have shared an apartment for {dur}."],
               ["Living with my {rel} {otag} for {dur}.", "Shared an apartment with my {rel} {otag} for {dur}."]),
            _f(["{me} moved in with {name} {otag}, a {rel} I found online, about {dur} ago.",
                "About {dur} ago {me} moved in with a {rel} I found online named {name} {otag}."],
               ["Moved in with a {rel} {otag} from online {dur} ago.", "My {rel} {otag} from online, {dur} ago."]),
        ),
        issues=(
            Issue(_f(["For the past [few weeks|month|couple of months] {he} has been eating my {food} without asking.",
                      "{He} keeps eating my {food} [without asking|when I'm at work|and pretending {he} didn't]."],
                     ["{He} keeps eating my {food}.", "{He} has been eating my {food}."]),
                  _f(["I've asked {him} to stop [twice|a few times|more than once] and {he} just {brushoff}.",
                      "Whenever I ask {him} to stop, {he} {brushoff}."],
                     ["When I ask {him} to stop {he} {brushoff}.", "Asked {him} to stop; {he} {brushoff}."]),
                  q=("stop {him} from eating my {food}", "protect my groceries without a lock")),
            Issue(_f(["{His} {lover} {lname} has basically moved in and stays over {nights} nights a week.",
                      "For [two|three] months now {his} {lover}, {lname}, has stayed over {nights} nights a week."],
                     ["{His} {lover} {lname} stays over {nights} nights a week.", "{His} {lover} stays over {nights} nights a week."]),
                  _f(["{lname} doesn't pay any rent, and our utility bill went up by {money} last month.",
                      "{lname} pays nothing toward rent and our utility bill is up {money}."],
                     ["{lname} pays no rent and our utility bill went up {money}.", "No rent from {lname}, utility bill up {money}."]),
                  q=("ask {lname} to chip in on rent", "set a limit on overnight guests")),
            Issue(_f(["{He} has been late on rent {ntimes} times this year, and I've had to cover {his} half ({money}) each time.",
                      "This year {he} paid rent late {ntimes} times and I covered {his} {money} half every time."],
                     ["{He}'s been late on rent {ntimes} times and I covered {his} {money} half.", "I covered {his} {money} rent {ntimes} times."]),
                  _f(["Our lease is in both of our names, so if rent is late the landlord can come after both of us.",
                      "Both our names are on the lease, so the landlord can come after me too."],
                     ["The lease is in both our names.", "Both names are on the lease."]),
                  q=("get {him} to pay rent on time", "protect myself if {he} stops paying rent")),
            Issue(_f(["{He} leaves dirty dishes in the sink for [days|a week at a time] and the kitchen has started to smell.",
                      "The sink is always full of {his} dirty dishes and now the kitchen smells."],
                     ["{He} leaves dirty dishes and the kitchen smells.", "{His} dirty dishes pile up in the kitchen."]),
                  _f(["We tried a chore chart [in {month}|last month] but {he} stopped following it after a week.",
                      "I even made a chore chart, which {he} ignored after one week."],
                     ["A chore chart lasted a week.", "{He} ignored the chore chart."]),
                  q=("get {him} to wash {his} dishes", "split cleaning duties fairly")),
            Issue(_f(["{He} {noise} until {hour} on weeknights.", "Most weeknights {he} {noise} until about {hour}."],
                     ["{He} {noise} until {hour} on weeknights.", "{He} {noise} until {hour}."]),
                  _f(["I have to be up at {wake} for my job as a {job}, and I'm exhausted.",
                      "My shift as a {job} starts at {wake}, so I'm exhausted all the time."],
                     ["I work at {wake} as a {job} and I'm exhausted.", "I'm a {job} up at {wake} and exhausted."]),
                  q=("ask {him} to stay quiet on weeknights", "sleep through {his} noise")),
        ),
        questions=("set some house ground rules", "get out of the lease early",
                   "confront {him} without making living together awkward"),
        slots={"food": ("groceries", "leftovers", "meal prep", "snacks", "coffee pods"),
               "brushoff": ("laughs it off", "says {he}'ll replace it and never does",
                            "acts like {he} has no idea what I mean"),
               "lover": ("boyfriend", "girlfriend"),
               "nights": ("four", "five", "six", "4", "5", "6"),
               "ntimes": ("three", "four", "five", "3", "4"),
               "noise": ("plays loud music", "games with {his} friends on voice chat", "has people over", "practices guitar"),
               "wake": ("5am", "6am", "5:30", "4:45")},
    ),
    Topic(
        name="work",
        subreddits=("careerguidance", "jobs", "antiwork", "work"),
        others=(("manager", "", 3, 20), ("boss", "", 4, 25), ("supervisor", "", 2, 18)),
        setups=(
            _f(["{me} have been working as a {job} at a {company} for {dur}.",
                "I {mytag} have worked at a {company} as a {job} for {dur} now."],
               ["I {mytag} have been a {job} at a {company} for {dur}.", "{job_cap} at a {company}, {dur}."]),
        ),
        issues=(
            Issue(_f(["At my review on {day} my {rel} {name} told me there's no budget for raises this year.",
                      "During my annual review my {rel}, {name}, said there's no budget for raises."],
                     ["My {rel} says there's no budget for raises.", "No budget for raises this year."]),
                  _f(["The same week I found out a new hire makes {money} more than me per month doing the same job.",
                      "Then I learned a new hire is making {money} more per month for the exact same job."],
                     ["A new hire makes {money} more a month for the same job.", "New hire gets {money} more per month."]),
                  q=("negotiate a raise to match the new hire", "ask for a raise without burning bridges")),
            Issue(_f(["Last month I built the {project} and my {rel} presented it to the [directors|leadership team|client] as {his} own work.",
                      "My {rel} {name} took the {project} I spent weeks on and presented it as {his} own work."],
                     ["My {rel} presented my {project} as {his} own work.", "{Rel} presented my {project} as {his} work."]),
                  _f(["{He} even got praised for it, and my name wasn't mentioned once.",
                      "{He} got all the praise and my name was never mentioned."],
                     ["{He} got praised and my name wasn't mentioned.", "My name wasn't mentioned and {he} got praised."]),
                  q=("get credit for my own work", "prove the {project} was my work")),
            Issue(_f(["My {rel} has been asking me to stay {nhours} hours late [almost every day|several times a week] without overtime pay.",
                      "For weeks my {rel} {name} has expected me to stay {nhours} hours late with no overtime pay."],
                     ["My {rel} wants me to stay {nhours} hours late without overtime pay.", "Staying {nhours} hours late, no overtime pay."]),
                  _f(["When I said I couldn't stay on {day} because of my {commitment}, {he} hinted that my job might be at risk.",
                      "I said no once because of my {commitment}, and {he} hinted my job could be at risk."],
                     ["{He} hinted my job is at risk when I missed it for my {commitment}.", "Said no for my {commitment}; {he} hinted my job is at risk."]),
                  q=("refuse unpaid overtime without getting fired", "document the unpaid overtime")),
            Issue(_f(["Yesterday I got an offer from a competitor for {money} more a month[, plus remote work|].",
                      "A competitor just offered me {money} more a month to switch."],
                     ["Got a competitor offer for {money} more a month.", "A competitor offered me {money} more a month."]),
                  _f(["I really like my team and my {rel} {name} has been a great mentor, so I feel guilty about leaving.",
                      "But my {rel} {name} has been a great mentor and I'd feel guilty leaving my team."],
                     ["My {rel} has been a great mentor and I feel guilty leaving.", "I feel guilty leaving my team and mentor {name}."]),
                  q=("decide whether to accept the competitor's offer", "tell my {rel} I'm leaving")),
        ),
        questions=("handle this professionally", "raise this with human resources"),
        slots={"project": ("quarterly sales report", "new scheduling system", "client pitch deck", "inventory spreadsheet",
                           "onboarding guide"),
               "nhours": ("two", "three", "2", "3"),
               "commitment": ("kid's recital", "night class", "doctor's appointment", "sister's wedding rehearsal")},
    ),
    Topic(
        name="work",
        subreddits=("work", "antiwork", "Advice", "careerguidance"),
        others=(("coworker", "", -8, 12), ("colleague", "", -8, 12)),
        setups=(
            _f(["{me} work [on a small team|at a call center|in a busy office] with a {rel} named {name} {otag} who started about {dur2} ago.",
                "About {dur2} ago a new {rel}, {name} {otag}, started on my team[ at the {company}|]."],
               ["New {rel} {name} {otag} started {dur2} ago.", "{Rel} {otag} started on my team {dur2} ago."]),
        ),
        issues=(
            Issue(_f(["{He} constantly interrupts me in meetings and then repeats my ideas [a few minutes later|as if they were {his}]."],
                     ["{He} interrupts me in meetings and repeats my ideas.", "{He} repeats my ideas in meetings."]),
                  _f(["Our manager {mname} hasn't noticed, and my performance review is in {month}.",
                      "My review is in {month} and our manager {mname} hasn't noticed anything."],
                     ["Manager {mname} hasn't noticed and my review is in {month}.", "My review is in {month}; {mname} hasn't noticed."]),
                  q=("stop {him} from stealing my ideas in meetings", "get credit for my ideas in meetings")),
            Issue(_f(["I found out {he} has been telling people on our team that {rumor}.",
                      "Apparently {he} has been going around telling the team that {rumor}."],
                     ["{He} is telling the team that {rumor}.", "{He} told the team {rumor}."]),
                  _f(["Two people have already stopped inviting me to lunch because of it.",
                      "Because of it two people on my team stopped inviting me to lunch."],
                     ["Two coworkers stopped inviting me to lunch.", "Two people stopped inviting me to lunch."]),
                  q=("shut down this rumor at work", "confront {him} about the rumor")),
            Issue(_f(["A few weeks ago {he} borrowed {money} from me for {reason} and promised to pay me back by {day}.",
                      "{He} borrowed {money} from me for {reason} and said {he}'d pay me back on {day}."],
                     ["{He} borrowed {money} for {reason} and never paid me back.", "Lent {him} {money} for {reason}, not paid back."]),
                  _f(["Every time I bring it up {he} changes the subject or says {he}'s waiting on payday.",
                      "Whenever I mention the money {he} changes the subject."],
                     ["{He} changes the subject whenever I ask.", "{He} just changes the subject."]),
                  q=("get my money back without making work awkward", "ask for my {money} back")),
        ),
        questions=("deal with {him} without looking petty", "handle this without involving management"),
        slots={"rumor": ("I'm about to quit", "I only got my job through the boss",
                         "I'm dating someone in accounting", "I'm getting fired soon")},
    ),
    Topic(
        name="money",
        subreddits=("personalfinance", "povertyfinance", "Advice"),
        others=SIBLINGS + FRIENDS,
        setups=(
            _f(["{me} [just started|recently got] my first full-time job as a {job} making about {salary} a year.",
                "I {mytag} work as a {job} and make around {salary} a year."],
               ["I {mytag} make {salary} a year as a {job}.", "{job_cap}, making {salary} a year."]),
        ),
        issues=(
            Issue(_f(["My {rel} {name} {otag} asked to borrow {money} to cover {reason} and I said yes.",
                      "A while ago I lent my {rel} {name} {otag} {money} for {reason}."],
                     ["Lent my {rel} {otag} {money} for {reason}.", "My {rel} borrowed {money} for {reason}."]),
                  _f(["That was {nmonths} months ago, and {he} just posted photos from a vacation in {city}.",
                      "It's been {nmonths} months and now {he}'s posting vacation photos from {city}."],
                     ["{nmonths} months later {he} posted vacation photos from {city}.",
                      "{nmonths} months on, {he} is on vacation in {city}."]),
                  q=("get my {money} back from my {rel}", "ask my {rel} to repay the loan")),
            Issue(_f(["I have about {money} in credit card debt from {debtcause}.",
                      "Thanks to {debtcause} I'm carrying {money} in credit card debt."],
                     ["I have {money} of credit card debt from {debtcause}.", "{money} in credit card debt."]),
                  _f(["My {rel} {name} keeps telling me to invest in {invest} instead of paying it off.",
                      "My {rel} insists I should invest in {invest} and pay the debt later."],
                     ["My {rel} says I should invest in {invest} instead.", "{Rel} wants me to invest in {invest} first."]),
                  q=("pay off my credit card debt faster", "explain to my {rel} why paying off debt comes first")),
            Issue(_f(["My parents recently asked me to start paying them {money} a month for {parentclaim}.",
                      "Out of nowhere my parents want {money} a month from me for {parentclaim}."],
                     ["My parents want {money} a month for {parentclaim}.", "Parents asking for {money} a month."]),
                  _f(["I'm trying to save for {goal} and that would eat almost half of my savings each month.",
                      "That's almost half of what I save each month for {goal}."],
                     ["That's half my savings for {goal}.", "I'm saving for {goal} and it's half my savings."]),
                  q=("say no to my parents without guilt", "negotiate a smaller amount with my parents")),
        ),
        questions=("build a realistic budget", "set money boundaries with family"),
        slots={"salary": ("$38k", "$42k", "$47k", "$52k", "$55k", "$61k", "$68k", "$74k"),
               "debtcause": ("college", "a medical emergency", "moving across the country", "my wedding"),
               "invest": ("crypto", "the stock market", "{his} friend's startup", "index funds"),
               "parentclaim": ("rent on my old room", "helping with the mortgage", "everything they did for me"),
               "goal": ("a house deposit", "a car", "grad school", "an emergency fund")},
    ),
    Topic(
        name="pets",
        subreddits=("dogs", "Pets", "AskVet", "dogtraining"),
        others=(("neighbor", "", -10, 30), ("downstairs neighbor", "", -10, 30)),
        setups=(
            _f(["{me} adopted a {petage} {pettype} named {pet} from a shelter about {dur2} ago.",
                "About {dur2} ago I {mytag} adopted {pet}, a {petage} {pettype}, from the local shelter."],
               ["Adopted {pet}, a {petage} {pettype}, {dur2} ago.", "Adopted a {pettype}, {pet}, {dur2} ago."]),
        ),
        issues=(
            Issue(_f(["Since {day} {pet} has been barking for hours whenever I leave for work.",
                      "Lately {pet} barks for hours every time I'm at work."],
                     ["{pet} barks for hours when I'm at work.", "{pet} is barking for hours while I work."]),
                  _f(["My {rel} {name} left a note saying {he}'ll report me to the landlord if it continues.",
                      "Yesterday my {rel}, {name}, threatened to report me to the landlord."],
                     ["My {rel} threatened to report me to the landlord.", "{Rel} will report me to the landlord."]),
                  q=("stop {pet} from barking while I'm at work", "keep {pet} calm when I'm at work")),
            Issue(_f(["Last week {pet} {accident} and needed emergency surgery.",
                      "On {day} {pet} {accident}, which meant emergency surgery."],
                     ["{pet} {accident} and needed emergency surgery.", "{pet} needed emergency surgery."]),
                  _f(["The vet bill came to {money} and I only have about {money2} in savings.",
                      "The vet bill is {money}, and I've only got {money2} saved."],
                     ["The vet bill is {money} and I have {money2} saved.", "Vet bill is {money}, savings are {money2}."]),
                  q=("pay the vet bill without going into debt", "find help paying for {pet}'s surgery")),
        ),
        questions=("handle my {rel} without a fight", "train {pet} to be alone"),
        slots={"petage": ("two-year-old", "three-year-old", "senior", "young", "one-year-old"),
               "pettype": ("beagle mix", "terrier", "husky", "lab mix", "greyhound", "border collie", "pit mix"),
               "accident": ("swallowed a sock", "ate part of a toy", "got into the trash", "ate a corn cob")},
        distractors=("{pet} also loves the dog park on {day2}s, for what it's worth.",
                     "The shelter said {pet} was found as a stray near {city2}."),
    ),
    Topic(
        name="pets",
        subreddits=("cats", "Pets", "relationship_advice"),
        others=PARTNERS,
        setups=(
            _f(["{me} have had my cat {pet} since {pet} was a kitten, about {yrs} years ago.",
                "I {mytag} have had {pet}, my cat, for {yrs} years."],
               ["I {mytag} have had my cat {pet} for {yrs} years.", "Had my cat {pet} for {yrs} years."]),
        ),
        issues=(
            Issue(_f(["My {rel} {name} {otag} is moving in next month and just told me {he}'s allergic to cats.",
                      "My {rel} {name} {otag} moves in next month and only now mentioned {he}'s allergic to cats."],
                     ["My {rel} {otag} moves in next month and is allergic to cats.", "{Rel} {otag} is allergic to cats and moving in."]),
                  _f(["{He} wants me to rehome {pet} before {he} moves in.",
                      "{His} solution is that I rehome {pet}."],
                     ["{He} wants me to rehome {pet}.", "{He} expects me to rehome {pet}."]),
                  q=("choose between {pet} and my {rel}", "tell {him} rehoming {pet} isn't an option")),
        ),
        questions=("make living with {pet} work for my {rel}", "keep both {pet} and my {rel}"),
    ),
    Topic(
        name="school",
        subreddits=("college", "GradSchool", "UniUK", "studying"),
        others=(("classmate", "", -2, 3), ("lab partner", "", -2, 3)),
        setups=(
            _f(["{me} am a {yearword}-year {degree} student at a state university.",
                "I {mytag} am in my {yearword} year of a {degree} degree."],
               ["{yearword_cap}-year {degree} student {mytag}.", "I'm a {yearword}-year {degree} student."]),
        ),
        issues=(
            Issue(_f(["In my {course} group project, a {rel} named {name} hasn't done anything for {nweeks} weeks.",
                      "One member of my {course} group, {name}, hasn't contributed anything in {nweeks} weeks."],
                     ["{name} hasn't done anything on our {course} project in {nweeks} weeks.",
                      "Group member {name} did nothing in {course} for {nweeks} weeks."]),
                  _f(["The project is worth {pct} percent of our grade and it's due on {day}.",
                      "It's due {day} and counts for {pct} percent of the grade."],
                     ["It's worth {pct}% of the grade and due {day}.", "Due {day}, worth {pct} percent of the grade."]),
                  q=("get {name} to do {his} part of the project", "tell the professor about {name}")),
            Issue(_f(["I got a {score} on my {course} midterm, but I'm pretty sure Dr. {surname} graded question {qnum} wrong.",
                      "My {course} professor, Dr. {surname}, gave me a {score} on the midterm and I think question {qnum} was graded wrong."],
                     ["Dr. {surname} graded question {qnum} of my {course} midterm wrong.", "Got a {score} in {course}, question {qnum} graded wrong."]),
                  _f(["When I emailed the professor, the reply was that grades are final and nobody even looked at my answer.",
                      "I emailed about it and was told grades are final."],
                     ["I emailed and was told grades are final.", "Professor says grades are final."]),
                  (("professor", "", 10, 30),),
                  q=("appeal my {course} grade", "get Dr. {surname} to regrade question {qnum}")),
            Issue(_f(["I'm failing {course} for the second time and it's required for my major.",
                      "This is my second time taking {course}, and I'm failing it again."],
                     ["Failing {course} for the second time.", "I'm failing {course} a second time."]),
                  _f(["My parents pay my tuition and they'd be really disappointed if I switched to {altmajor}.",
                      "I'd love to switch to {altmajor}, but my parents pay my tuition and would be disappointed."],
                     ["My parents pay tuition and would be disappointed if I switched to {altmajor}.",
                      "Want to switch to {altmajor}; parents pay tuition."]),
                  q=("tell my parents I want to switch to {altmajor}", "pass {course} on my third try")),
        ),
        questions=("talk to my academic advisor about this", "stay on track to graduate"),
        slots={"yearword": ("first", "second", "third", "fourth", "final"), "yearword_cap": ("{Yearword}",),
               "degree": ("nursing", "engineering", "biology", "history", "computer science", "accounting", "psychology"),
               "course": ("statistics", "marketing", "organic chemistry", "software engineering", "microeconomics", "anatomy"),
               "score": ("62", "58", "71", "64", "49"),
               "qnum": ("3", "4", "7", "9", "12"),
               "pct": ("30", "35", "40", "25", "50"),
               "nweeks": ("two", "three", "2", "3", "4"),
               "altmajor": ("graphic design", "history", "education", "film studies", "nursing")},
    ),
    Topic(
        name="family",
        subreddits=("family", "AmItheAsshole", "JUSTNOMIL", "Advice"),
        others=(("mother-in-law", "F", 22, 35), ("future mother-in-law", "F", 22, 35)),
        setups=(
            _f(["{me} am getting married in {month} to my fiance {fname}.",
                "My fiance {fname} and I {mytag} are getting married this {month}."],
               ["I {mytag} am getting married in {month}.", "Marrying {fname} in {month}."]),
        ),
        issues=(
            Issue(_f(["My {rel} {name} wants to invite {nguests} of {his} own friends to our wedding.",
                      "{name}, my {rel}, insists on inviting {nguests} of {his} friends to the wedding."],
                     ["My {rel} wants to invite {nguests} of {his} friends to our wedding.", "{Rel} {name} wants {nguests} friends invited."]),
                  _f(["Our venue only holds {cap} people, and we're paying for almost all of it ourselves.",
                      "We're paying for most of it ourselves and the venue only holds {cap} people."],
                     ["The venue holds {cap} people and we're paying.", "We're paying and the venue holds {cap}."]),
                  q=("limit the guest list without a fight", "get my fiance {fname} to back me up")),
        ),
        questions=("tell {him} no without causing drama", "set boundaries with my {rel}"),
        slots={"nguests": ("15", "20", "25", "30", "12"), "cap": ("80", "100", "90", "120", "60")},
    ),
    Topic(
        name="family",
        subreddits=("family", "AmItheAsshole", "Advice"),
        others=SIBLINGS + (("mom", "F", 20, 35), ("dad", "M", 22, 38)),
        setups=(
            _f(["{me} am the oldest of {nsib} kids and still live close to my parents in {city}.",
                "I {mytag} am the oldest of {nsib} siblings and live near my parents in {city}."],
               ["Oldest of {nsib}, living near my parents in {city}.", "Oldest of {nsib} kids, near my parents in {city}."]),
        ),
        issues=(
            Issue(_f(["My {rel} {name} {otag} borrowed my car for a weekend and returned it with a {damage} and an empty tank.",
                      "I lent my car to my {rel} {name} {otag} and got it back with a {damage}."],
                     ["My {rel} {otag} returned my car with a {damage}.", "{Rel} {otag} brought my car back with a {damage}."]),
                  _f(["The repair quote is {money}, and my parents say I should let it go because {he}'s {excuse}.",
                      "Fixing it costs {money}, but my parents want me to let it go since {he}'s {excuse}."],
                     ["Repair is {money} and my parents say let it go.", "The repair costs {money}; parents say let it go."]),
                  SIBLINGS,
                  q=("get my {rel} to pay for the repair", "push back on my parents about the car")),
            Issue(_f(["My {rel} announced that I'm hosting {holiday} this year because I 'have the biggest house'.",
                      "Without asking, my {rel} told everyone I'm hosting {holiday} this year."],
                     ["My {rel} decided I'm hosting {holiday}.", "{Rel} says I'm hosting {holiday} this year."]),
                  _f(["I had a baby {nweeks} weeks ago and I'm running on no sleep.",
                      "I literally had a baby {nweeks} weeks ago."],
                     ["I had a baby {nweeks} weeks ago.", "Baby born {nweeks} weeks ago."]),
                  q=("get out of hosting {holiday}", "tell my {rel} I can't host {holiday}")),
            Issue(_f(["My {rel} started dating someone {nyears} years younger a few months after the divorce.",
                      "A few months after the divorce my {rel} began dating someone {nyears} years younger."],
                     ["My {rel} is dating someone {nyears} years younger after the divorce.", "Post-divorce, my {rel} dates someone {nyears} years younger."]),
                  _f(["{He} wants me to meet {his} new partner at dinner on {day}, and I'm not ready.",
                      "Now {he} wants a dinner on {day} so I can meet {his} new partner, and I'm not ready."],
                     ["{He} wants me to meet {his} new partner on {day}.", "Not ready to meet {his} new partner {day}."]),
                  (("mom", "F", 20, 35), ("dad", "M", 22, 38)),
                  q=("tell my {rel} I need more time", "meet {his} new partner politely")),
        ),
        questions=("set boundaries with my {rel}", "handle this without the family taking sides"),
        slots={"nsib": ("three", "four", "five", "3", "4"),
               "damage": ("dented bumper", "cracked headlight", "scratched door", "broken side mirror"),
               "excuse": ("still in school", "going through a hard time", "the baby of the family"),
               "nweeks": ("three", "five", "six", "4", "7"),
               "nyears": ("15", "18", "20", "22", "25")},
    ),
    Topic(
        name="health",
        subreddits=("AskDocs", "HealthInsurance", "ChronicPain", "fitness"),
        others=(("doctor", "", 5, 30),),
        setups=(
            _f(["{me} have been dealing with {symptom} for about {dur}.",
                "For {dur} now I {mytag} have had {symptom}."],
               ["I {mytag} have had {symptom} for {dur}.", "{Symptom} for {dur}."]),
        ),
        issues=(
            Issue(_f(["My doctor, Dr. {surname}, says it's probably just stress and won't order any tests.",
                      "Dr. {surname}, my doctor, keeps blaming stress and refuses to order tests."],
                     ["Dr. {surname} blames stress and won't order tests.", "My doctor blames stress, no tests."]),
                  _f(["It's gotten bad enough that I've missed {ndays} days of work this month.",
                      "I've already missed {ndays} days of work this month because of it."],
                     ["I've missed {ndays} days of work this month.", "Missed {ndays} days of work."]),
                  q=("get my doctor to order tests", "find a doctor who takes my {symptom} seriously")),
            Issue(_f(["I started going to the gym {perweek} times a week in {month} and lost {lbs} pounds.",
                      "Since {month} I've lost {lbs} pounds going to the gym {perweek} times a week."],
                     ["Lost {lbs} pounds going to the gym {perweek} times a week.", "Gym {perweek} times a week, down {lbs} pounds."]),
                  _f(["But my {symptom} has gotten worse since I started {exercise}.",
                      "Ever since I started {exercise}, my {symptom} got worse."],
                     ["My {symptom} got worse since I started {exercise}.", "{Exercise} made my {symptom} worse."]),
                  q=("keep exercising without making my {symptom} worse", "train around my {symptom}")),
            Issue(_f(["My specialist wants me to get a scan, but my insurance only covers {pct} percent of it.",
                      "A specialist ordered a scan and my insurance covers just {pct} percent."],
                     ["Insurance covers only {pct}% of a scan I need.", "My insurance covers {pct} percent of the scan."]),
                  _f(["That leaves about {money} out of pocket, which I don't have.",
                      "I'd owe roughly {money} out of pocket."],
                     ["It would cost me {money} out of pocket.", "{money} out of pocket."]),
                  q=("appeal my insurance company's decision", "afford this scan")),
        ),
        questions=("get a second opinion", "stop my {symptom} from ruining my life"),
        slots={"symptom": ("migraines", "back pain", "insomnia", "heartburn", "knee pain", "dizzy spells"),
               "ndays": ("three", "four", "five", "6", "7"),
               "perweek": ("3", "4", "5", "three", "four"),
               "lbs": ("15", "20", "25", "30", "12"),
               "exercise": ("deadlifting", "running", "doing squats", "cycling"),
               "pct": ("40", "50", "60", "30")},
    ),
    Topic(
        name="travel",
        subreddits=("travel", "solotravel", "TravelHacks", "Flights"),
        others=FRIENDS + SIBLINGS + PARTNERS[:2],
        setups=(
            _f(["{me} am planning a {ndays}-day trip to {city} with my {rel} {name} {otag} in {month}.",
                "My {rel} {name} {otag} and I {mytag} booked a {ndays}-day trip to {city} for {month}."],
               ["{ndays}-day trip to {city} with my {rel} in {month}.", "{ndays}-day {city} trip with my {rel} {otag}."]),
        ),
        issues=(
            Issue(_f(["We agreed on a budget of {money} each, but {he} keeps booking {splurge}.",
                      "Our budget was {money} each, and {he} keeps booking {splurge} anyway."],
                     ["Budget is {money} each but {he} keeps booking {splurge}.", "{He} keeps booking {splurge} over our {money} budget."]),
                  _f(["When I pointed this out {he} called me cheap and said it's a once in a lifetime trip.",
                      "{He} called me cheap for not splurging on a once in a lifetime trip."],
                     ["{He} called me cheap since it's a once in a lifetime trip.", "{He} calls it a once in a lifetime trip and me cheap."]),
                  q=("split trip costs fairly", "tell {him} I can't afford {splurge}")),
            Issue(_f(["Our flight was cancelled the night before and the airline rebooked us {ndays2} days later.",
                      "The airline cancelled our flight at the gate and rebooked us {ndays2} days later."],
                     ["Flight cancelled and rebooked {ndays2} days later.", "Airline cancelled our flight, rebooked {ndays2} days later."]),
                  _f(["They're only offering a {money} voucher, and I lost a {money2} hotel booking.",
                      "All they offer is a {money} voucher, while I lost {money2} on the hotel."],
                     ["Only a {money} voucher but I lost {money2} on the hotel.", "{money} voucher, {money2} hotel lost."]),
                  q=("get a real refund from the airline", "claim back the {money2} hotel")),
            Issue(_f(["I just realized my passport expires in {nmonths} months, and {city} requires six months of validity.",
                      "Turns out my passport expires in {nmonths} months and {city} needs six months of validity."],
                     ["My passport expires in {nmonths} months and {city} needs six.", "Passport expires in {nmonths} months."]),
                  _f(["We fly out in {nweeks} weeks and the earliest renewal appointment is after that.",
                      "The earliest renewal appointment is after we fly out in {nweeks} weeks."],
                     ["We fly in {nweeks} weeks and renewal is later.", "Earliest renewal is after we fly in {nweeks} weeks."]),
                  q=("renew my passport in time", "get an emergency passport appointment")),
        ),
        questions=("salvage this trip", "keep this trip from ruining our friendship"),
        slots={"ndays": ("5", "7", "10", "12", "14"),
               "ndays2": ("two", "three", "2", "3", "4"),
               "splurge": ("expensive hotels", "first-class train seats", "fancy restaurants", "private tours"),
               "nweeks": ("three", "four", "five", "6")},
    ),
    Topic(
        name="legal",
        subreddits=("legaladvice", "Tenant", "Renters"),
        others=(("landlord", "", 5, 35), ("property manager", "", 0, 25)),
        setups=(
            _f(["{me} have been renting [an apartment|a small house|a studio] in {city} for {dur}.",
                "I {mytag} have rented the same place in {city} for {dur}."],
               ["Renting in {city} for {dur}.", "Rented in {city} for {dur}."]),
        ),
        issues=(
            Issue(_f(["I moved out on {day} and my {rel} is keeping my entire {money} deposit for '{deduction}'.",
                      "After I moved out my {rel} said {he}'s keeping all of my {money} deposit for {deduction}."],
                     ["My {rel} is keeping my whole {money} deposit for {deduction}.", "{Rel} kept my {money} deposit."]),
                  _f(["I have dated photos from move-in and move-out showing the place was spotless.",
                      "I took photos at move-in and move-out, and the place was spotless."],
                     ["I have photos showing the place was spotless.", "Move-out photos show it spotless."]),
                  q=("get my {money} deposit back", "take my {rel} to small claims court")),
            Issue(_f(["My {rel} {name} has entered my apartment {ntimes} times this month without any notice.",
                      "This month alone my {rel} has come into my apartment {ntimes} times with no notice."],
                     ["My {rel} entered my apartment {ntimes} times without notice.", "{Rel} came in {ntimes} times with no notice."]),
                  _f(["The last time, I came home and {he} was in my bedroom {doing}.",
                      "Last time I found {him} in my bedroom {doing}."],
                     ["{He} was in my bedroom {doing}.", "Found {him} in my bedroom {doing}."]),
                  q=("make my {rel} respect my privacy", "stop my {rel} entering without notice")),
            Issue(_f(["Our {utility} has been broken for {ndays} days and my {rel} keeps saying someone will come soon.",
                      "The {utility} has been broken for {ndays} days and my {rel} keeps stalling."],
                     ["No {utility} for {ndays} days and my {rel} keeps stalling.", "{Utility} broken {ndays} days."]),
                  _f(["I work from home and have a {nmonths}-month-old baby.",
                      "I have a {nmonths}-month-old baby and work from home."],
                     ["I have a {nmonths}-month-old baby at home.", "I work from home with a {nmonths}-month-old."]),
                  q=("force my {rel} to fix the {utility}", "withhold rent until the {utility} works")),
        ),
        questions=("find out if I need a lawyer", "document everything for court"),
        slots={"deduction": ("cleaning", "wear and tear", "repainting", "carpet replacement"),
               "ntimes": ("three", "four", "five", "3", "4", "6"),
               "doing": ("looking through my closet", "taking photos", "checking the smoke detector"),
               "utility": ("heating", "hot water", "air conditioning", "fridge"),
               "ndays": ("4", "6", "9", "12", "five")},
    ),
    Topic(
        name="legal",
        subreddits=("legaladvice", "Insurance", "personalfinance"),
        others=(("driver", "", -10, 25),),
        setups=(
            _f(["{me} was stopped at a red light in {city} on {day} when another driver rear-ended me.",
                "On {day} I {mytag} got rear-ended while waiting at a red light in {city}."],
               ["I {mytag} got rear-ended at a red light in {city}.", "Rear-ended at a red light in {city}."]),
        ),
        issues=(
            Issue(_f(["The other driver, {name}, gave me {his} insurance details, but the company says the policy was cancelled in {month}.",
                      "{name}, the other driver, handed over insurance details for a policy that was cancelled in {month}."],
                     ["The other driver's insurance policy was cancelled in {month}.", "{name}'s policy was cancelled in {month}."]),
                  _f(["The repair estimate is {money} and my own policy has a {money2} deductible.",
                      "Repairs will cost {money}, and my deductible is {money2}."],
                     ["Repairs are {money} and my deductible is {money2}.", "{money} repair estimate, {money2} deductible."]),
                  q=("get {name} to pay for my car", "file a claim against an uninsured driver")),
            Issue(_f(["My neck has hurt ever since, and the physical therapist says I'll need {nsessions} sessions.",
                      "Since the crash my neck hurts and I need {nsessions} sessions of physical therapy."],
                     ["I need {nsessions} sessions of physical therapy for my neck.", "Neck hurts, {nsessions} therapy sessions needed."]),
                  _f(["{His} insurer offered me {money} to settle and wants an answer by {day2}.",
                      "The insurer offered {money} to settle, answer due {day2}."],
                     ["The insurer offered {money} to settle by {day2}.", "{money} settlement offer, due {day2}."]),
                  q=("decide whether to take the settlement", "value my neck injury claim")),
        ),
        questions=("deal with the insurance company", "find out if I need a lawyer"),
        slots={"nsessions": ("8", "10", "12", "15", "20")},
    ),
    Topic(
        name="tech",
        subreddits=("techsupport", "buildapc", "24hoursupport"),
        others=(("dad", "M", 24, 38), ("mom", "F", 22, 36), ("grandpa", "M", 45, 60), ("grandma", "F", 45, 60)),
        setups=(
            _f(["{me} bought a {device} from {store} about {nmonths} months ago.",
                "About {nmonths} months ago I {mytag} got a {device} from {store}."],
               ["Bought a {device} from {store} {nmonths} months ago.", "My {device} from {store} is {nmonths} months old."]),
        ),
        issues=(
            Issue(_f(["Since {day} it shuts off randomly, usually when I {trigger}.",
                      "Now it randomly shuts off whenever I {trigger}."],
                     ["It randomly shuts off when I {trigger}.", "It shuts off randomly when I {trigger}."]),
                  _f(["{store} says the warranty doesn't cover it because I {voided}.",
                      "Support at {store} told me the warranty is void since I {voided}."],
                     ["{store} says the warranty doesn't cover it.", "{store} says I voided the warranty."]),
                  q=("get this fixed under warranty", "push {store} to honor the warranty")),
            Issue(_f(["Yesterday someone took over my {account} account and changed the recovery email.",
                      "My {account} account got hacked yesterday and the recovery email was changed."],
                     ["Someone took over my {account} account.", "My {account} account got hacked."]),
                  _f(["They've already sent messages to {ncontacts} of my contacts asking for gift cards.",
                      "They're messaging my contacts asking for gift cards, {ncontacts} so far."],
                     ["They're messaging my contacts for gift cards.", "{ncontacts} contacts got gift card messages."]),
                  q=("get my {account} account back", "warn my contacts about the scam")),
            Issue(_f(["My {rel} {otag} keeps {techbad} and calling me to fix it.",
                      "Every week my {rel} {otag} ends up {techbad} and then calls me."],
                     ["My {rel} keeps {techbad}.", "{Rel} {otag} keeps {techbad}."]),
                  _f(["I live {nhours} hours away, so I end up walking {him} through everything over the phone.",
                      "I'm {nhours} hours away, so it's all over the phone."],
                     ["I live {nhours} hours away.", "I'm {nhours} hours away, fixing it by phone."]),
                  q=("lock down my {rel}'s computer", "fix {his} computer remotely")),
        ),
        questions=("back up my files first", "avoid buying a new device"),
        slots={"device": ("gaming laptop", "budget laptop", "desktop computer", "refurbished tablet", "mesh router"),
               "trigger": ("open a game", "join a video call", "plug in a second monitor", "watch videos"),
               "voided": ("opened the case to clean it", "updated the drivers myself", "added more memory"),
               "account": ("email", "gaming", "streaming", "social media"),
               "ncontacts": ("20", "35", "50", "12"),
               "techbad": ("clicking on pop-up ads", "installing random toolbars", "giving strangers remote access",
                           "deleting the browser"),
               "nhours": ("two", "three", "four", "5", "6")},
    ),
    Topic(
        name="friendship",
        subreddits=("socialskills", "Advice", "offmychest", "relationship_advice"),
        others=FRIENDS,
        setups=(
            _f(["{me} have been friends with {name} {otag} since {since}.",
                "{name} {otag} has been my {rel} since {since}."],
               ["Friends with {name} {otag} since {since}.", "{name} {otag}, friends since {since}."]),
        ),
        issues=(
            Issue(_f(["{He} asked me to be in {his} wedding party, which means spending about {money} on the outfit, shower and trip to {city}.",
                      "{He} wants me in {his} wedding party, and between the outfit and the trip to {city} it'll cost {money}."],
                     ["{He} wants me in {his} wedding party; it'll cost {money}.", "{His} wedding party costs {money} with the {city} trip."]),
                  _f(["I just lost my job in {month} and honestly can't afford it.",
                      "I lost my job in {month} and can't afford it."],
                     ["I lost my job in {month} and can't afford it.", "Lost my job, can't afford it."]),
                  q=("tell {name} I can't afford {his} wedding", "bow out of the wedding party gracefully")),
            Issue(_f(["{He} has cancelled on me the last {ntimes} times we made plans, usually an hour before.",
                      "The last {ntimes} times we made plans {he} cancelled an hour before."],
                     ["{He} cancelled our last {ntimes} plans an hour before.", "{He} cancelled the last {ntimes} times."]),
                  _f(["But {he} always has time to hang out with {his} new friends from {activity}.",
                      "Meanwhile {he} always finds time for {his} {activity} friends."],
                     ["{He} always has time for {his} {activity} friends.", "But always time for {activity} friends."]),
                  q=("tell {name} the cancelling hurts", "stop making plans with {name}")),
            Issue(_f(["At {dname}'s party on {day}, {he} told everyone about my {secret} as a joke.",
                      "On {day} at {dname}'s party {he} made a joke about my {secret} in front of everyone."],
                     ["{He} joked about my {secret} in front of everyone.", "{He} told everyone about my {secret} as a joke."]),
                  _f(["{He} says it wasn't a big deal and that I'm too sensitive.",
                      "When I said it hurt, {he} said I'm too sensitive and it was no big deal."],
                     ["{He} says I'm too sensitive and it was no big deal.", "Apparently I'm too sensitive and it's no big deal."]),
                  q=("get an apology from {name}", "explain to {name} why the joke hurt")),
        ),
        questions=("decide if this friendship is worth saving", "set boundaries with {name}"),
        slots={"since": ("middle school", "college", "high school", "we were kids", "our first job"),
               "ntimes": ("three", "four", "five", "3", "4"),
               "activity": ("climbing", "work", "the gym", "book club", "church"),
               "secret": ("panic attacks", "divorce", "job loss", "therapy", "debt")},
    ),
    Topic(
        name="neighbors",
        subreddits=("neighbors", "legaladvice", "HomeImprovement", "Advice"),
        others=(("neighbor", "", -10, 30), ("next-door neighbor", "", -10, 30)),
        setups=(
            _f(["{me} bought a house on a quiet street in {city} about {dur} ago.",
                "About {dur} ago I {mytag} moved into a house on a quiet street in {city}."],
               ["Bought a house on a quiet street in {city}.", "Moved to a quiet street in {city} {dur} ago."]),
        ),
        issues=(
            Issue(_f(["My {rel} {name} keeps parking {his} {vehicle} across the end of my driveway.",
                      "{name}, my {rel}, keeps blocking my driveway with {his} {vehicle}."],
                     ["My {rel} keeps blocking my driveway with {his} {vehicle}.", "{Rel} {name} parks {his} {vehicle} across my driveway."]),
                  _f(["On {day} I was {nmin} minutes late to work because I couldn't get out.",
                      "I was {nmin} minutes late to work on {day} because of it."],
                     ["I was {nmin} minutes late to work.", "Made me {nmin} minutes late to work."]),
                  q=("stop my {rel} blocking my driveway", "get {his} {vehicle} towed legally")),
            Issue(_f(["A huge tree in my {rel}'s yard dropped a branch on my {structure} during the storm on {day}.",
                      "During the storm on {day}, a branch from my {rel}'s tree fell on my {structure}."],
                     ["A branch from my {rel}'s tree hit my {structure}.", "Branch from {rel}'s tree fell on my {structure}."]),
                  _f(["The repair quote is {money}, and {he} says it was just bad luck and not {his} problem.",
                      "Repairs are quoted at {money} and {he} says it's not {his} problem."],
                     ["Repair is {money} and {he} says it's not {his} problem.", "{money} repair, not {his} problem."]),
                  q=("get my {rel} to pay for the damage", "claim the {structure} repair")),
            Issue(_f(["My {rel} has started {racket} after {hour} most nights.",
                      "Most nights after {hour} my {rel} is {racket}."],
                     ["My {rel} is {racket} after {hour}.", "{Rel} keeps {racket} after {hour}."]),
                  _f(["I've knocked on {his} door twice and {he} just shrugged.",
                      "Twice I've knocked on {his} door about it and {he} shrugged it off."],
                     ["I knocked twice and {he} shrugged.", "{He} shrugged when I knocked twice."]),
                  q=("get the city involved about the noise", "report the noise without a feud")),
        ),
        questions=("handle this without starting a feud", "keep things civil with my {rel}"),
        slots={"vehicle": ("truck", "van", "boat trailer", "camper"),
               "nmin": ("20", "30", "40", "15"),
               "structure": ("roof", "fence", "shed", "car"),
               "racket": ("practicing drums", "running a table saw", "hosting loud parties", "revving a motorcycle")},
    ),
)

Q_SRC = ("[So|Anyway|So yeah], how do I {q}?", "My question is, how do I {q}?", "What's the best way to {q}?",
         "How should I {q}?", "Any advice on how to {q}?", "[Reddit|Guys|Everyone], how would you {q}?",
         "How can I {q}?", "I guess what I'm asking is how to {q}.")
Q_REF = ("How do I {q}?", "How to {q}?", "Advice on how to {q}?", "How can I {q}?", "How should I {q}?")
QUESTION = F(Q_SRC, Q_REF)

PREAMBLES: tuple[tuple[str, ...], ...] = (
    ("[Hi|Hey|Hello] [everyone|all|reddit|guys|folks][.|!]", "[Hey|Hi] [guys|all|there], long time lurker, first time poster.",
     "First time posting [here|in this sub|on reddit], so please be [gentle|nice|kind].",
     "Not sure if this is the right [sub|place] for this, but here goes.", "[Okay|Ok|Alright] reddit, I need your help.",
     "[Long time|Longtime] reader, [first post|first time posting], so [bear with me|go easy on me].",
     "[Good morning|Good evening|Hey there], [hoping|I'm hoping] someone here can help."),
    ("Sorry for the formatting, I'm on [mobile|my phone].", "Apologies in advance for [formatting|any typos], posting from my phone.",
     "Mobile user here, so sorry about the [formatting|typos].", "On mobile so sorry for any [typos|weird formatting].",
     "[Formatting|The formatting] might be [weird|off], I'm typing this on my phone.",
     "Posting from my phone, so [excuse|forgive] the [formatting|typos]."),
    ("Throwaway account because my {leak} [knows|follows|checks] my main.", "Using a throwaway for [obvious|privacy] reasons.",
     "Throwaway since some of my [friends|coworkers|family] know my main account.",
     "[Throwaway|Alt account] because I don't want this linked to me.",
     "[Made|Created] a new account for this since my {leak} knows my username."),
    ("English is not my first language, so sorry for any mistakes.", "This is going to be a long one, so bear with me.",
     "Sorry in advance, this got longer than I [planned|expected].", "I'll try to keep this [short|as short as I can].",
     "I've been [reading|lurking on] this sub for [years|ages] and never thought I'd be posting here.",
     "I honestly don't know where else to [ask|turn] [with this|about this|].",
     "My {drel} suggested I post here to get some outside [opinions|perspective].",
     "I posted this in [another sub|a different sub] but was told to try here.", "I need some outside perspective on this[, please|].",
     "Mods, please remove if this isn't allowed.", "[Please|Pls] be nice, I'm already [stressed|anxious] enough about this.",
     "Not really sure how to [start|word] this, so I'll just [jump in|start]."),
)
DISTRACTORS = (
    "For what it's worth, I work as a {job} and usually get home around {clock}.",
    "We also have a {animal} named {pet2} who is honestly the best part of my day.",
    "My {drel} {dname} thinks I'm overthinking this, but {dname} thinks that about everything.",
    "I live in {city2}, if that matters.",
    "Not that it matters, but it was raining the whole time.",
    "I had just gotten back from the gym when all this happened.",
    "I've been pretty stressed lately because of {stress} and a bunch of other stuff.",
    "Side note, the {cuisine} place near us closed down last month, which has nothing to do with this but still sucks.",
    "We had {dish} for dinner that night, for what it's worth.",
    "I'm usually a pretty laid back person, for context.",
    "I've read a bunch of similar posts here but none of them quite fit.",
    "{dname}, a friend from work, went through something similar a couple of years ago.",
    "We'd been binge watching {show} all week.",
    "I also started a {hobby} class on {day2}s, which I'm loving.",
    "The weather here has been awful, like {temp} degrees all week.",
    "I'm saving up for a trip to {city3} in the spring, so money is a bit tight.",
    "My {drel} {dname} is visiting from {city2} next month, so I want this sorted before then.",
    "I drive a {age2}-year-old {car} that barely runs, if that's relevant.",
    "I've been trying to cut back on coffee, so I'm a bit on edge anyway.",
    "{name} is usually a pretty reasonable person, to be fair.",
    "{name} has always been [a bit|kind of] [stubborn|disorganized|forgetful|moody], but never like this.",
    "I don't think {name} means any harm, honestly.",
    "{name} grew up in {city2} and [moved here for work|still visits family there a lot].",
    "To be fair, {name} has been stressed about {his} own stuff lately.",
    "{name} and I [used to|still] play [pickup basketball|trivia|board games] on {day2}s.",
    "I've been losing sleep over this.",
    "I cried in my car afterwards, which I'm not proud of.",
    "Part of me wonders if I'm the problem here.",
    "I don't want to be dramatic, but it's really getting to me.",
    "This has been going on longer than I'd like to admit.",
    "I've typed and deleted this post like {ntries} times.",
    "My {drel} {dname} already told me to just let it go.",
    "I turned {myage} last [month|spring|year], so maybe I'm just getting less patient.",
    "I started a new [medication|diet|workout plan] in {month2}, which has been an adjustment.",
    "My {drel} {dname} and the kids stayed with me for a week in {month2}, so things were hectic.",
    "I also volunteer at an animal shelter on weekends, for context.",
    "We're in {city2}, so everything is expensive anyway.",
    "My phone died halfway through the whole thing, which didn't help.",
    "I'm a night owl, which has never really been an issue before.",
    "We both love {show}, and that's honestly how we bonded.",
    "I also just got over a nasty cold, so maybe I'm more irritable than usual.",
    "I've lived in this area for about {nyrs2} years and mostly love it.",
    "My {drel} says I should just make a pros and cons list, but that feels silly.",
    "I know this sounds minor compared to a lot of posts here.",
    "There's also a {animal} next door that howls every morning at {clock}, but that's another story.",
    "I spent most of {day2} cleaning out my closet, so I was already tired.",
)
CLOSINGS = ("Thanks in advance.", "Any advice is appreciated!", "Thanks for reading this far.", "EDIT: formatting.",
            "Edit: wow, I did not expect this many replies. Thank you all.", "Thank you for any advice.",
            "Sorry for the long post.", "Edit: typo.")

F_NAMES = ("Emma", "Olivia", "Ava", "Sophia", "Mia", "Chloe", "Hannah", "Grace", "Priya", "Aisha", "Maya", "Lucy",
           "Jess", "Sarah", "Megan", "Rachel", "Nina", "Zoe", "Leah", "Amara", "Ines", "Rosa", "Keiko", "Fatima",
           "Julia", "Tessa", "Naomi", "Ellie", "Sofia", "Claire", "Dana", "Mei", "Anika", "Lauren", "Brooke")
M_NAMES = ("Jake", "Ryan", "Ethan", "Noah", "Liam", "Mason", "Lucas", "Owen", "Dylan", "Tyler", "Marcus", "Omar",
           "Raj", "Kevin", "Sam", "Ben", "Chris", "Matt", "Josh", "Andre", "Diego", "Hiro", "Kwame", "Luis", "Felix",
           "Nate", "Connor", "Evan", "Adam", "Theo", "Ali", "Jordan", "Caleb", "Victor", "Sean")
ALL_NAMES = F_NAMES + M_NAMES
SURNAMES = ("Patel", "Nguyen", "Okafor", "Schmidt", "Garcia", "Kowalski", "Murphy", "Chen", "Haddad", "Larsen",
            "Rossi", "Brennan", "Adeyemi", "Novak", "Silva", "Fischer")
CITIES = ("Denver", "Austin", "Chicago", "Seattle", "Boston", "Toronto", "Phoenix", "Portland", "Atlanta", "Dublin",
          "Manchester", "Melbourne", "Vancouver", "Lisbon", "Berlin", "Tokyo", "Miami", "Nashville", "Calgary", "Leeds")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
JOBS = ("nurse", "cashier", "line cook", "software developer", "receptionist", "warehouse associate", "graphic designer",
        "bank teller", "barista", "accountant", "mechanic", "dental assistant", "teacher", "paralegal", "electrician",
        "pharmacy tech", "delivery driver", "social worker")

POOLS: dict[str, tuple[str, ...]] = {
    "dur": tuple(f"{n} years" for n in range(2, 10)) + tuple(f"{n} months" for n in range(4, 12))
    + ("about a year", "almost a year", "a year and a half"),
    "mos": ("two", "three", "four"),
    "dur2": ("two weeks", "three weeks", "a month", "{mos} months", "six weeks"),
    "yrs": tuple(str(n) for n in range(2, 15)),
    "nmonths": tuple(str(n) for n in range(2, 11)),
    "money": tuple(f"${n}" for n in (60, 80, 120, 150, 200, 250, 300, 350, 400, 450, 500, 600, 750, 800, 900,
                                      1200, 1500, 1800, 2000, 2500, 3000, 4000)),
    "money2": tuple(f"${n}" for n in (100, 250, 400, 500, 700, 1000, 1500)),
    "day": DAYS, "day2": DAYS, "month": MONTHS,
    "city": CITIES, "city2": CITIES, "city3": CITIES,
    "holiday": ("Thanksgiving", "Christmas", "Easter", "Hanukkah", "Diwali", "Eid", "New Year's"),
    "app": ("Hinge", "Bumble", "Tinder", "OkCupid"),
    "social": ("Instagram", "TikTok", "Snapchat", "Twitter"),
    "cuisine": ("Italian", "Thai", "Japanese", "French", "Korean", "Mexican", "Lebanese"),
    "store": ("TechMart", "ByteBarn", "GadgetHub", "CircuitWorld", "PixelPoint"),
    "surname": SURNAMES,
    "job": JOBS,
    "company": ("small marketing agency", "hospital", "grocery store", "tech startup", "law firm", "logistics company",
                "hotel", "insurance company", "call center", "car dealership"),
    "reason": ("car repairs", "rent", "a plane ticket home", "vet bills", "a security deposit"),
    "hour": ("midnight", "1am", "2am", "3am", "11pm"),
    "clock": ("6", "7", "8", "6:30", "7:30"),
    "show": ("The Office", "Severance", "Bluey", "Succession", "Parks and Rec", "The Bear"),
    "animal": ("cat", "dog", "parrot", "rabbit", "corgi"),
    "pet": ("Biscuit", "Mochi", "Luna", "Milo", "Pepper", "Ziggy", "Nala", "Otis", "Maple", "Bruno"),
    "pet2": ("Waffles", "Pickles", "Juniper", "Loki", "Peanut", "Ollie"),
    "stress": ("finals", "a big deadline", "my move", "a family thing"),
    "dish": ("tacos", "pasta", "curry", "pizza", "stir fry"),
    "hobby": ("pottery", "salsa", "climbing", "yoga", "cooking", "woodworking"),
    "temp": ("95", "100", "20", "15", "104"),
    "car": ("Honda Civic", "Toyota Corolla", "Ford Focus", "Subaru Outback"),
    "age2": ("12", "15", "18", "20"),
    "ntries": ("five", "ten", "a dozen", "20"),
    "month2": MONTHS,
    "nyrs2": ("three", "five", "ten", "4", "6"),
    "leak": ("sister", "boyfriend", "girlfriend", "mom", "coworker", "wife", "husband"),
    "drel": ("best friend", "therapist", "coworker", "cousin", "roommate", "friend"),
    "job_cap": ("{Job}",),
}
# Slots whose values are names of people, places, products or days: the post's entities.
PROPER = frozenset({"name", "dname", "exname", "lname", "fname", "mname", "surname", "pet", "pet2", "city", "city2",
                    "city3", "month2", "holiday", "app", "social", "cuisine", "store", "day", "day2", "month", "show",
                    "car"})
GAP_CHOICES = (0, 1, 1, 1, 2, 2, 2, 3, 3, 3)  # distractors open the post less often than they interrupt it
AGE_FORMATS = ("({a}{g})", "({a}{g})", "({a}{g})", "({g}{a})", "({a} {g})", "({a}/{g})")


@functools.cache
def _topic_groups() -> list[list[int]]:
    """Indices of TOPICS by topic name, so each topic is drawn equally often."""
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(TOPICS):
        groups.setdefault(t.name, []).append(i)
    return list(groups.values())


@functools.cache
def _topic_distractors() -> list[tuple[str, ...]]:
    return [DISTRACTORS + t.distractors for t in TOPICS]


@functools.cache
def _topic_pools() -> list[dict[str, tuple[str, ...]]]:
    return [{**POOLS, **t.slots} for t in TOPICS]


def _count_words(text: str) -> int:
    return len(text.split())


def _person(fill: SlotFiller, others: Sequence[tuple[str, str, int, int]], my_age: int, fmt: str) -> None:
    """The other person of the story: relation, name, age tag and pronouns; bystanders' names."""
    pick, rng = fill.pick, fill.rng
    rel, gender, lo, hi = pick(others)
    gender = gender or pick("MF")
    name = pick(M_NAMES if gender == "M" else F_NAMES)
    fill.set("rel", rel)
    fill.set("name", name, proper=True)
    fill.set("otag", fmt.format(a=max(16, my_age + lo + int(rng.random() * (hi - lo + 1))), g=gender))
    male = gender == "M"
    fill.set("he", "he" if male else "she")
    fill.set("him", "him" if male else "her")
    fill.set("his", "his" if male else "her")
    fill.set("guy", "guy" if male else "girl")
    # Bystanders' names: consecutive names from a random start (distinct, one draw), minus the other person's.
    start = int(rng.random() * len(ALL_NAMES))
    bystanders = [n for n in (ALL_NAMES * 2)[start : start + 6] if n != name]
    for slot, other in zip(("dname", "exname", "lname", "fname", "mname"), bystanders):
        fill.set(slot, other, proper=True)


def _post(rng: random.Random, max_words: int) -> Document | None:
    """One post, or None when this draw misses the length or consistency bounds."""
    groups = _topic_groups()
    group = groups[int(rng.random() * len(groups))]
    k = group[int(rng.random() * len(group))]
    topic = TOPICS[k]
    fill = SlotFiller(rng, _topic_pools()[k], PROPER)
    pick = fill.pick
    issue = pick(topic.issues)
    my_age = 18 + int(rng.random() * 25)
    fmt = pick(AGE_FORMATS)
    fill.set("mytag", fmt.format(a=my_age, g=pick("MF")))
    fill.set("me", "I " + fill.values["mytag"])
    fill.set("myage", str(my_age))
    _person(fill, issue.others or topic.others, my_age, fmt)
    questions = issue.q if issue.q and rng.random() < 0.75 else topic.questions
    fill.set("q", fill(pick(questions)))

    specs = (pick(topic.setups), issue.event, issue.problem, QUESTION)
    refs = [fill(pick(s.ref)) for s in specs]
    reference = " ".join(refs)
    if not MIN_REF_WORDS <= _count_words(reference) <= MAX_REF_WORDS:
        return None
    sentences = [fill(pick(s.src)) for s in specs]
    facts = [Fact(s, shared_keywords(s, r)) for s, r in zip(sentences, refs)]
    if any(len(f.keywords) < 2 for f in facts):
        return None

    preamble = ""
    if rng.random() < 0.55:
        first = int(rng.random() * len(PREAMBLES))
        kinds = [PREAMBLES[first]]
        if rng.random() < 0.35:
            kinds.append(PREAMBLES[(first + 1 + int(rng.random() * (len(PREAMBLES) - 1))) % len(PREAMBLES)])
        preamble = " ".join(fill(pick(kind)) for kind in kinds)

    # Distractors go into the gaps before each fact until the post reaches its target length.
    gaps: list[list[str]] = [[] for _ in specs]
    pool = _topic_distractors()[k]
    used: set[int] = set()
    target = rng.triangular(MIN_WORDS + 8, max_words - 10, min(115, max_words - 10))
    closing = fill(pick(CLOSINGS)) if rng.random() < 0.35 else ""
    words = sum(_count_words(t) for t in (preamble, closing, *sentences))
    named = fill.values["name"] in " ".join(sentences)
    while words < target and len(used) < 14:
        j = int(rng.random() * len(pool))
        if j in used:
            continue
        used.add(j)
        if not named and "{name}" in pool[j]:
            continue  # an aside about someone the post never introduced
        text = fill(pool[j])
        gaps[pick(GAP_CHOICES)].append(text)
        words += _count_words(text)
    if not MIN_WORDS <= words <= max_words:
        return None

    paragraphs: list[list[str]] = [[]]
    for i, gap in enumerate(gaps):
        for j, sentence in enumerate([*gap, sentences[i]]):
            is_question = i == 3 and j == len(gap)
            if paragraphs[-1] and (is_question or rng.random() < 0.25):
                paragraphs.append([])
            paragraphs[-1].append(sentence)
    if closing:
        paragraphs[-1].append(closing)
    body = "\n\n".join(" ".join(p) for p in paragraphs)
    source = f"{preamble}\n\n{body}" if preamble else body
    if not grounded(reference, source, fill.names):
        return None
    return make_document(source, reference, facts, preamble, entities_in(source, fill.names), topic.name,
                         {"subreddit": pick(topic.subreddits)})


def generate_posts(n: int, seed: int, max_words: int = MAX_WORDS) -> list[Document]:
    """`n` distinct posts, the same for the same seed on every machine.

    `max_words` below the default shortens the longest posts, e.g. to fit a test model's
    context (configs pass it with `_partial_: true`).
    """
    if not MIN_WORDS + 30 <= max_words <= MAX_WORDS:
        raise InputError(f"generate_posts: max_words must be in [{MIN_WORDS + 30}, {MAX_WORDS}], got {max_words}")
    return distinct_documents(lambda rng: _post(rng, max_words), n, seed)


# The prompt format of trl-lib/tldr and CarperAI/openai_summarize_tldr: the post sits between
# "POST:" and "TL;DR:", with the subreddit (and often a title) before it.
_REDDIT_PROMPT = re.compile(
    r"\s*SUBREDDIT:\s*r/(?P<subreddit>\S+)\s*(?:TITLE:\s*(?P<title>.*?)\s*)?POST:\s*(?P<post>.*?)\s*(?:TL;DR:\s*)?\Z",
    re.S,
)


@dataclass
class TldrTask(SummarizationTask):
    """TL;DR summaries of Reddit posts; `source='embedded'` uses `generate_posts`.

    Meta adds "subreddit" (and "title" for real prompts that carry one). Real data: see the
    module docstring for the column mappings of the common TL;DR datasets.
    """

    name: str = "tldr"
    max_new_tokens: int = 48
    n_train: int = 5000
    n_eval: int = 500
    columns: Mapping[str, str] = field(default_factory=lambda: {"source": "prompt", "reference": "completion"})
    splits: Mapping[str, str] = field(default_factory=lambda: {"train": "train", "eval": "validation"})
    prompt_template: str = "SUBREDDIT: r/{subreddit}\n\nPOST: {source}\n\nTL;DR:"

    def embedded_generator(self) -> GeneratorFn:
        return self.generator or generate_posts

    def document_from_record(self, row: Mapping[str, str]) -> Document:
        """A row whose source is a formatted TL;DR prompt is split into subreddit, title and post."""
        match = _REDDIT_PROMPT.match(row["source"])
        if match is None:
            return super().document_from_record(row)
        fields = {k: v.strip() for k, v in match.groupdict().items() if v is not None}
        post = fields.pop("post")
        return super().document_from_record({**row, **fields, "source": post})

