"""Summarise a news article in highlights (Ziegler et al., 2019, §4.2; CNN/Daily Mail).

The embedded default is a corpus of short news articles generated here from a seeded grammar,
each with an explicit latent structure:

- an optional byline preamble ("By Jane Smith for MailOnline."), in about one article in five;
- the key facts: the main event (who, what, where, when) and one to three of its details
  (numbers, consequences, what happens next);
- quotes from named officials and witnesses, background paragraphs and a scene-setting
  opener, none of them key;
- reference highlights (two to four short sentences, one per key fact, newline-separated as
  in the dataset's `highlights` column) written from the key facts only.

As in real news, the lead paragraph usually states the main event (about four articles in
five; the rest open with a scene), so lead-3 is a strong baseline, as in the literature.
Keywords of a fact are the content tokens its article sentence shares with its highlight.

Real data: the default columns read the hub's cnn_dailymail schema (`article`, `highlights`,
`id`; source "cnn_dailymail:3.0.0" or "abisee/cnn_dailymail:3.0.0", splits train /
validation / test). For XSum-like sets map columns={source: document, reference: summary}.
"""

from __future__ import annotations

import functools
import random
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

MIN_WORDS, MAX_WORDS = 90, 190  # ≈ 120–250 tokens


class F(NamedTuple):
    """One key fact: ways the article states it, ways a highlight states it."""

    src: tuple[str, ...]
    ref: tuple[str, ...]


def _f(src: Sequence[str], ref: Sequence[str]) -> F:
    return F(tuple(src), tuple(ref))


@dataclass(frozen=True)
class Story:
    """A kind of news story: the main fact, its optional details, and what surrounds them.

    `ages` bounds the age of the story's person ({pname}, {page}, {person}, {he}, …).
    """

    name: str
    main: F
    details: tuple[F, ...]
    quotes: tuple[str, ...]
    background: tuple[str, ...]
    scenes: tuple[str, ...]
    slots: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ages: tuple[int, int] = (20, 70)


STORIES: tuple[Story, ...] = (
    Story(
        name="crime",
        main=_f(["Police in {city} arrested a {page}-year-old {person} on {day} after a {store} was robbed at {weapon}.",
                 "A {page}-year-old {person} has been arrested after a {store} in {city} was robbed at {weapon} on {day}.",
                 "A {store} in {city} was robbed at {weapon} on {day}, and police have arrested a {page}-year-old {person}."],
                ["{Page}-year-old {person} arrested after {store} robbery in {city}.",
                 "Police arrest {person}, {page}, over {weapon} robbery at {city} {store}."]),
        details=(
            _f(["The suspect is accused of escaping with about {money} in {loot}.",
                "Officers said about {money} in {loot} was taken."],
               ["About {money} in {loot} was taken.", "Suspect allegedly took {money} in {loot}."]),
            _f(["{Pname}, of {city2}, is due to appear before magistrates on {day2}.",
                "{Pname}, from {city2}, will appear in court on {day2}, police said."],
               ["{Pname} is due to appear in court on {day2}.", "{Psur} will appear before magistrates on {day2}."]),
            _f(["A {victim} was treated for shock but nobody was seriously hurt.",
                "No one was seriously injured, although a {victim} was treated for shock at the scene."],
               ["A {victim} was treated for shock.", "{Victim} treated for shock, no serious injuries."]),
        ),
        quotes=('"This was a frightening experience for the staff," said {oname}, {orole}.',
                '{Oname}, {orole}, said: "We are grateful to the members of the public who called us so quickly."',
                '"He just walked in, calm as anything," said {wname}, {wage}, who works next door.'),
        background=("It is the {ordinal} robbery at a {store} in the area this year.",
                    "The shop reopened [later that afternoon|the following morning].",
                    "Officers are still reviewing footage from cameras in the area.",
                    "Anyone with information is asked to contact police."),
        scenes=("Shoppers on a busy street in {city} watched as officers surrounded a {store} on {day}.",
                "It began as an ordinary {day} morning at a small {store} in {city}."),
        slots={"store": ("jewellery store", "petrol station", "convenience store", "pharmacy", "bank branch", "phone shop"),
               "weapon": ("knifepoint", "gunpoint"),
               "loot": ("cash and watches", "cash and cigarettes", "phones and tablets", "cash"),
               "victim": ("shop assistant", "cashier", "customer", "security guard"),
               "orole": ("a police spokesperson", "the local police commander", "a detective leading the case")},
        ages=(18, 46),
    ),
    Story(
        name="fire",
        main=_f(["More than {n} residents were evacuated from {building} in {city} on {day} after a fire broke out [on the {floor} floor|in the basement|in a kitchen].",
                 "A fire at {building} in {city} forced {n} people to evacuate on {day}."],
                ["{n} people evacuated after fire at {building} in {city}.", "Fire forces {n} people out of {building} in {city}."]),
        details=(
            _f(["{Ncrews} fire crews spent {nhours} hours bringing the blaze under control.",
                "It took {ncrews} fire crews about {nhours} hours to bring the blaze under control."],
               ["{Ncrews} fire crews fought the blaze for {nhours} hours.", "Crews took {nhours} hours to control the blaze."]),
            _f(["Investigators believe the fire was started by {cause}.",
                "The fire is thought to have been started by {cause}, fire officials said."],
               ["Fire thought to have been started by {cause}.", "Investigators blame {cause} for the fire."]),
            _f(["{Ninj} people were taken to hospital with {injury}.",
                "Paramedics took {ninj} people to hospital, most of them with {injury}."],
               ["{Ninj} people taken to hospital with {injury}.", "{Ninj} treated in hospital for {injury}."]),
        ),
        quotes=('"The crews did an outstanding job in very difficult conditions," said {oname}, {orole}.',
                '"I grabbed my [kids|cat|phone] and ran," said resident {wname}, {wage}.',
                '"You could see the flames from the other end of the street," said {wname}, a neighbour.'),
        background=("The building was [renovated|last inspected] in {year}.",
                    "Residents have been offered temporary accommodation [at a nearby hotel|by the council].",
                    "Several roads nearby were closed for most of the day."),
        scenes=("Thick black smoke could be seen for miles across {city} on {day} [morning|evening].",
                "Residents in their pyjamas stood on the pavement in {city} as flames lit up the sky."),
        slots={"building": ("an apartment block", "a care home", "a hotel", "a student hall", "a block of flats"),
               "floor": ("third", "fourth", "top", "ground"),
               "n": ("40", "60", "85", "120", "150", "200"),
               "ncrews": ("six", "eight", "ten", "twelve", "15"),
               "nhours": ("three", "four", "five", "six"),
               "cause": ("a faulty electric heater", "an unattended candle", "a discarded cigarette", "an overloaded extension lead",
                         "a tumble dryer"),
               "ninj": ("two", "three", "four", "five", "seven"),
               "injury": ("smoke inhalation", "minor burns", "breathing difficulties"),
               "orole": ("the area's fire chief", "a fire service spokesperson", "the incident commander")},
    ),
    Story(
        name="weather",
        main=_f(["{stormname} [battered|swept across] the {city} area on {day}, bringing winds of up to {mph} mph.",
                 "Winds of up to {mph} mph hit the {city} area on {day} as {stormname} arrived."],
                ["{stormname} brings {mph} mph winds to the {city} area.", "{mph} mph winds as {stormname} hits {city}."]),
        details=(
            _f(["Around {nhomes} homes were left without power.", "Power was cut to about {nhomes} homes."],
               ["{nhomes} homes lost power.", "About {nhomes} homes without power."]),
            _f(["Train services between {city} and {city2} were suspended after trees fell on the line.",
                "Trains from {city} to {city2} were suspended because of fallen trees."],
               ["Trains between {city} and {city2} suspended.", "Fallen trees halt trains from {city} to {city2}."]),
            _f(["Forecasters have issued {nwarn} flood warnings for the weekend.",
                "{Nwarn} flood warnings are in place ahead of the weekend."],
               ["{Nwarn} flood warnings issued for the weekend.", "{Nwarn} flood warnings in place."]),
        ),
        quotes=('"Please stay indoors and avoid travelling unless absolutely necessary," said {oname}, {orole}.',
                '"The whole fence just lifted off and landed in the road," said {wname}, {wage}.'),
        background=("It is the {ordinal} named storm of the season.",
                    "Last winter, a similar storm caused damage estimated at {bigmoney}.",
                    "Schools in parts of the region were closed as a precaution."),
        scenes=("Waves crashed over the sea wall and roof tiles were ripped from homes as the weather worsened on {day}.",
                "By mid-morning on {day}, fallen branches littered the streets of {city}."),
        slots={"stormname": ("Storm Ciara", "Storm Dennis", "Storm Arwen", "Storm Eunice", "Storm Henk", "Storm Otto",
                             "Storm Babet", "Storm Isha"),
               "mph": ("70", "75", "80", "85", "90", "100"),
               "nhomes": ("12,000", "30,000", "4,500", "80,000", "18,000"),
               "nwarn": ("12", "25", "40", "seven", "nine"),
               "orole": ("a spokesperson for the weather service", "the regional emergency coordinator")},
    ),
    Story(
        name="business",
        main=_f(["{company}, which employs {nstaff} people in {city}, said on {day} that it will cut {njobs} jobs.",
                 "{company} will cut {njobs} jobs, the company announced on {day}."],
                ["{company} to cut {njobs} jobs.", "{company} announces {njobs} job cuts."]),
        details=(
            _f(["The company reported a loss of ${loss} million in its latest quarter, blaming {blame}.",
                "It lost ${loss} million in the last quarter, a loss it blamed on {blame}."],
               ["{company} lost ${loss} million last quarter.", "Firm blames {blame} for ${loss} million loss."]),
            _f(["Staff at its {site} in {city2} will be the first affected.",
                "Workers at the {site} in {city2} will be affected first."],
               ["Staff at its {city2} {site} affected first.", "{city2} {site} workers affected first."]),
            _f(["The workers' union said it would ballot members on strike action.",
                "Union leaders said they would ballot members on strike action over the cuts."],
               ["Union to ballot members on strike action.", "Workers' union plans strike ballot of members."]),
        ),
        quotes=('"These are difficult decisions, but they are necessary to secure the future of the business," said chief executive {oname}.',
                '"People are devastated," said {wname}, who has worked at the {site} for {nyears} years.'),
        background=("{company} was founded in {year} and has {nsites} sites across the country.",
                    "Shares in the company fell {pct} per cent on the news.",
                    "Several rivals have announced similar cuts this year."),
        scenes=("Workers arriving for the morning shift on {day} were told to gather in the canteen.",),
        slots={"company": ("Harwell Foods", "Brightline Logistics", "Novacore Systems", "Redfern Retail", "Castleton Motors",
                           "Pinebrook Media", "Ardent Pharma"),
               "nstaff": ("1,200", "2,500", "4,000", "800", "6,300"),
               "njobs": ("300", "450", "600", "1,100", "250"),
               "loss": ("12", "40", "85", "230", "7"),
               "blame": ("rising energy costs", "weak consumer demand", "higher interest rates", "supply chain problems"),
               "site": ("warehouse", "factory", "call centre", "head office", "distribution centre"),
               "nsites": ("14", "22", "35", "nine"),
               "pct": ("4", "6", "9", "12")},
    ),
    Story(
        name="sport",
        main=_f(["{team} beat {team2} {s1}-{s2} on {day} to {achieve}.",
                 "{team} came from behind to beat {team2} {s1}-{s2} on {day} and {achieve}."],
                ["{team} beat {team2} {s1}-{s2} to {achieve}.", "{team} {achieve} after {s1}-{s2} win over {team2}."]),
        details=(
            _f(["{Pname}, {page}, scored the winner in the {minute}th minute.",
                "The decisive goal came from {pname}, {page}, in the {minute}th minute."],
               ["{Pname} scored the winner in the {minute}th minute.", "{Psur} scored the decisive goal in the {minute}th minute."]),
            _f(["A crowd of {crowd} watched the match at {stadium}.", "{crowd} fans were at {stadium} for the match."],
               ["{crowd} fans watched at {stadium}.", "Crowd of {crowd} at {stadium}."]),
            _f(["They will face {team3} in the next round on {day2}.", "{team} now play {team3} on {day2}."],
               ["They face {team3} next on {day2}.", "{team} play {team3} on {day2}."]),
        ),
        quotes=('"I am so proud of the players, they never gave up," said manager {oname}.',
                '"It was the best night of my life," said {pname}.',
                '"We were the better side for an hour, but football can be cruel," said {team2} coach {wname}.'),
        background=("{team} were founded in {year} and have not won a major trophy since {year2}.",
                    "The two sides drew {d}-{d} when they last met in {month}.",
                    "Ticket prices for the match had been cut to attract families."),
        scenes=("The rain was lashing down at {stadium} as the teams walked out on {day} night.",),
        slots={"team": ("{city} United", "{city} Rovers", "{city} Athletic"),
               "team2": ("{city2} City", "{city2} Wanderers", "{city2} Town"),
               "team3": ("{city3} Albion", "{city3} County", "{city3} Rangers"),
               "s1": ("2", "3", "4"), "s2": ("0", "1"), "d": ("1", "2", "0"),
               "achieve": ("reach the cup final", "move top of the league", "secure promotion", "reach the quarter-finals"),
               "minute": ("54", "67", "78", "84", "89"),
               "crowd": ("23,000", "41,500", "12,800", "35,000", "8,400"),
               "stadium": ("Riverside Park", "the Kingsway Stadium", "Elm Road", "the Northgate Arena")},
        ages=(19, 34),
    ),
    Story(
        name="science",
        main=_f(["Scientists at the {uni} have discovered {discovery}, according to a study published on {day}.",
                 "A team from the {uni} has discovered {discovery}, a study published on {day} says."],
                ["{uni} scientists discover {discovery}.", "Researchers at the {uni} discover {discovery}."]),
        details=(
            _f(["The team, led by Professor {oname}, spent {nyears} years on the project.",
                "Professor {oname} and colleagues worked on the project for {nyears} years."],
               ["The project took {nyears} years.", "Professor {osur} led the {nyears}-year project."]),
            _f(["The findings were published in the journal {journal}.", "The results appear in the journal {journal}."],
               ["Findings published in the journal {journal}.", "The journal {journal} published the results."]),
            _f(["The team now plans to {nextstep}.", "Next, the researchers hope to {nextstep}."],
               ["Researchers now plan to {nextstep}.", "Next they hope to {nextstep}."]),
        ),
        quotes=('"This is a really exciting result, and it raises a lot of new questions," said Professor {oname}.',
                '"We did not expect to find anything like this," said {wname}, a researcher on the team.'),
        background=("The {uni} has a long history of research in the field.",
                    "Similar studies in the past have produced mixed results.",
                    "The work was funded by a government grant of {money}."),
        scenes=("For years, nobody had thought to look closely at the samples sitting in a university freezer.",),
        slots={"uni": ("University of {city}", "{city} Institute of Technology"),
               "discovery": ("a new species of tree frog in a remote rainforest", "a planet twice the size of ours orbiting a nearby star",
                             "a shipwreck more than 2,000 years old off the coast", "a bacterium that can break down plastic",
                             "a gene linked to longer life in mice"),
               "journal": ("Nature", "Science Advances", "Current Biology", "Cell Reports"),
               "nextstep": ("run larger trials next year", "search for similar cases nearby", "test the method on other materials")},
    ),
    Story(
        name="health",
        main=_f(["A hospital in {city} cancelled {n} {ops} this week after {hcause}.",
                 "{n} {ops} were cancelled at a hospital in {city} this week because of {hcause}."],
                ["{n} {ops} cancelled at {city} hospital after {hcause}.", "{city} hospital cancels {n} {ops}."]),
        details=(
            _f(["Patients have been told to go to {althosp} in {city2} for emergencies.",
                "Emergency patients are being sent to {althosp} in {city2}."],
               ["Patients told to go to {althosp} in {city2}.", "Emergency patients sent to {althosp}."]),
            _f(["The hospital's chief executive, {oname}, said services should return to normal by {day2}.",
                "Services are expected to return to normal by {day2}, according to chief executive {oname}."],
               ["Services expected to return to normal by {day2}.", "Normal services should return by {day2}."]),
            _f(["Health officials have launched an investigation into what went wrong.",
                "An investigation has been launched by health officials."],
               ["Health officials launch an investigation.", "An investigation has been launched."]),
        ),
        quotes=('"We apologise to every patient affected," said {oname}.',
                '"I waited months for this appointment," said {wname}, {wage}.'),
        background=("The hospital treats around {npat} patients a year.",
                    "Waiting lists in the region are among the longest in the country.",
                    "Affected patients will be contacted directly to rearrange their care.",
                    "Staff have been working extra shifts to clear the backlog."),
        scenes=("Patients arriving at the hospital in {city} on {day} found notices taped to the doors.",),
        slots={"n": ("120", "300", "450", "80", "1,000"),
               "ops": ("operations", "appointments", "scans"),
               "hcause": ("a cyber attack on its computer systems", "a norovirus outbreak", "staff shortages",
                          "a burst water main"),
               "althosp": ("St Mary's Hospital", "Royal Victoria Hospital", "Mercy General Hospital", "Queen Elizabeth Hospital"),
               "npat": ("200,000", "450,000", "90,000")},
    ),
    Story(
        name="education",
        main=_f(["{school}, a primary school in {city}, will close in {month} after the council voted to cut its funding.",
                 "Councillors have voted to close {school} in {city} in {month}."],
                ["{school} in {city} to close in {month}.", "Council votes to close {school} in {month}."]),
        details=(
            _f(["The school has {n} pupils, down from {n2} a decade ago.",
                "Pupil numbers have fallen from {n2} a decade ago to {n} today."],
               ["Pupil numbers fell from {n2} to {n}.", "The school now has {n} pupils, down from {n2}."]),
            _f(["Parents have started a petition, which has gathered {nsig} signatures.",
                "A petition started by parents has {nsig} signatures."],
               ["A parents' petition has {nsig} signatures.", "Petition gathers {nsig} signatures."]),
            _f(["Pupils will be offered places at {school2}, {nmiles} miles away.",
                "Children will be offered places at {school2}, which is {nmiles} miles away."],
               ["Pupils offered places at {school2}, {nmiles} miles away.", "Places offered at {school2}, {nmiles} miles away."]),
        ),
        quotes=('"The heart is being ripped out of our community," said parent {wname}.',
                'A council spokesperson said: "No one takes a decision like this lightly."'),
        background=("The school opened in {year}.",
                    "Several schools in the region have closed in recent years as birth rates have fallen.",
                    "The building will be sold, the council said.", "Staff have been told they will be offered other posts."),
        scenes=("At the school gates on {day}, parents gathered in small groups, some of them in tears.",),
        slots={"school": ("Oakfield Primary School", "St Anne's Primary School", "Millbrook Primary School", "Hillside Primary School"),
               "school2": ("Westgate Primary", "Larchwood Primary", "Brook Lane Primary"),
               "n": ("94", "112", "78", "130"), "n2": ("260", "310", "240", "280"),
               "nsig": ("1,200", "3,400", "850", "2,100"), "nmiles": ("three", "four", "six", "5")},
    ),
    Story(
        name="politics",
        main=_f(["Councillors in {city} voted {v1} to {v2} on {day} to {decision} plans for {project}.",
                 "{city} council voted {v1} to {v2} on {day} to {decision} plans for {project}."],
                ["{city} council votes {v1}-{v2} to {decision} {project}.", "Councillors vote to {decision} plans for {project}."]),
        details=(
            _f(["The project would cost an estimated ${cost} million and create {njobs} jobs.",
                "Supporters say it would create {njobs} jobs and cost about ${cost} million."],
               ["It would cost ${cost} million and create {njobs} jobs.", "Project worth ${cost} million, {njobs} jobs."]),
            _f(["More than {nobj} residents had signed objections to the scheme.",
                "The council received {nobj} objections from residents."],
               ["{nobj} residents objected.", "There were {nobj} objections from residents."]),
        ),
        quotes=('"This is a decision for the next generation," said council leader {oname}.',
                '"Nobody asked the people who actually live here," said {wname}, {wage}.'),
        background=("The site has been empty since {year}.", "A previous proposal for the site was withdrawn in {year2}.",
                    "The meeting lasted more than four hours.",
                    "Opponents say they will consider a legal challenge.",
                    "Work could begin as early as next spring."),
        scenes=("The public gallery was packed as councillors in {city} gathered for a meeting on {day} evening.",),
        slots={"v1": ("31", "24", "18", "40"), "v2": ("12", "9", "15", "22"),
               "decision": ("approve", "reject"),
               "project": ("a new football stadium", "a 300-home housing estate", "a waste incinerator",
                           "a cable car across the river", "a solar farm"),
               "cost": ("45", "120", "18", "300"), "njobs": ("200", "450", "90", "1,500"),
               "nobj": ("600", "1,400", "2,300", "350")},
    ),
    Story(
        name="animals",
        main=_f(["A {animal} that escaped from {zoo} in {city} on {day} was found {nhours} hours later in {found}.",
                 "An escaped {animal} was found in {found} {nhours} hours after it got out of {zoo} on {day}."],
                ["Escaped {animal} found in {found} after {nhours} hours.", "{Animal} from {zoo} found {nhours} hours later."]),
        details=(
            _f(["Keepers believe it squeezed through a gap in the fence during feeding time.",
                "Zoo staff think it slipped through a gap in the fence."],
               ["Keepers believe it got through a gap in the fence.", "It escaped through a gap in the fence."]),
            _f(["The {animal}, named {aname}, was returned unharmed.",
                "{aname} the {animal} was returned to its enclosure unharmed."],
               ["{aname} was returned unharmed.", "{aname} the {animal} returned unharmed."]),
            _f(["The zoo will stay closed until {day2} while the fence is repaired.",
                "The fence is being repaired and the zoo will stay closed until {day2}."],
               ["Zoo closed until {day2} while the fence is repaired.", "The zoo stays closed until {day2}."]),
        ),
        quotes=('"We were just about to open when a keeper noticed the enclosure was empty," said {oname}, {orole}.',
                '"I looked up and there it was, just sitting there," said {wname}, {wage}.'),
        background=("The park, which opened in {year}, is home to more than {nspecies} species.",
                    "It is not the first escape at the park: a {animal2} got out in {year2}."),
        scenes=("It was not the sort of visitor anyone expected on a quiet {day} morning.",),
        slots={"animal": ("red panda", "lemur", "capybara", "penguin", "wallaby", "otter"),
               "animal2": ("monkey", "flamingo", "tortoise"),
               "zoo": ("Whitmore Wildlife Park", "Ashcombe Zoo", "Lakeside Animal Park"),
               "found": ("a nearby garden centre", "a school playground", "a supermarket car park", "a churchyard"),
               "nhours": ("six", "12", "18", "30"),
               "aname": ("Rusty", "Mango", "Pip", "Kiko", "Hazel"),
               "nspecies": ("80", "120", "150"),
               "orole": ("the park's director", "a spokesperson for the zoo")},
    ),
    Story(
        name="courts",
        main=_f(["A {page}-year-old former {jobn} from {city} was jailed for {nyears} years on {day} for stealing {money} from {victim}.",
                 "{Pname}, a {page}-year-old former {jobn}, was jailed for {nyears} years on {day} after stealing {money} from {victim}."],
                ["Former {jobn}, {page}, jailed for {nyears} years for stealing {money}.", "{Pname} jailed for stealing {money} from {victim}."]),
        details=(
            _f(["{Psur} used the money to pay for {spent}, the court heard.",
                "The court heard that {psur} spent the money on {spent}."],
               ["{Psur} spent the money on {spent}.", "The money paid for {spent}, the court heard."]),
            _f(["The thefts went unnoticed for {nyears2} years.", "{He} took the money over {nyears2} years without anyone noticing."],
               ["The thefts went unnoticed for {nyears2} years.", "Money taken over {nyears2} years."]),
            _f(["Judge {oname} said {psur} had shown no remorse.", "Sentencing, Judge {oname} said {psur} had shown no remorse."],
               ["Judge said {psur} showed no remorse.", "{Psur} showed no remorse, the judge said."]),
        ),
        quotes=('"We are relieved this is finally over," said a spokesperson for the victims.',
                '"Everyone trusted {him} completely," said {wname}, a former colleague.'),
        background=("{Psur} had no previous convictions.", "The case is one of several similar frauds in the region this year.",
                    "The trial lasted two weeks.", "Investigators traced the payments through several bank accounts."),
        scenes=("For years, {pname} was a trusted and popular figure in {city}.",),
        slots={"jobn": ("accountant", "charity treasurer", "bank clerk", "office manager", "solicitor"),
               "victim": ("a children's charity", "a local football club", "{his} employer", "elderly clients"),
               "spent": ("holidays and designer clothes", "a gambling habit", "a new kitchen and a sports car"),
               "nyears": ("three", "four", "five", "six"), "nyears2": ("two", "three", "seven", "eight"),
               "money": ("$240,000", "$85,000", "$1.2 million", "$460,000")},
        ages=(32, 66),
    ),
    Story(
        name="transport",
        main=_f(["Commuters in {city} faced delays on {day} after {n} {mode} drivers walked out in a dispute over {dispute}.",
                 "{n} {mode} drivers in {city} went on strike on {day} in a dispute over {dispute}."],
                ["{n} {mode} drivers strike over {dispute}.", "{Mode} drivers in {city} walk out over {dispute}."]),
        details=(
            _f(["Most services into {city} were cancelled during the morning rush hour.",
                "Services into {city} were cut by more than half during the rush hour."],
               ["Most {city} services cancelled at rush hour.", "Rush hour services into {city} cut."]),
            _f(["The union says a further {ndays}-day strike is planned for {month}.",
                "Another {ndays}-day strike is planned for {month}, the union said."],
               ["A {ndays}-day strike is planned for {month}.", "Union plans {ndays}-day strike in {month}."]),
            _f(["The operator said it had offered a pay rise of {pct} per cent.",
                "Bosses say they have already offered a pay rise of {pct} per cent."],
               ["Operator says it offered a {pct} per cent pay rise.", "A {pct} per cent pay rise was offered."]),
        ),
        quotes=('"Our members have been left with no choice," said {oname}, a union official.',
                '"I had to take a taxi and it cost me a fortune," said commuter {wname}.'),
        background=("It is the {ordinal} strike on the network this year.", "Talks between the two sides broke down last month.",
                    "Some schools in the area opened late because of the disruption.",
                    "Road traffic was heavier than usual across the city."),
        scenes=("Platforms and bus stops across {city} were unusually quiet early on {day}.",),
        slots={"n": ("400", "650", "1,200", "900"), "mode": ("bus", "train", "tram"),
               "dispute": ("pay", "working hours", "safety", "a new rota"),
               "ndays": ("two", "three", "four", "5"), "pct": ("3", "4", "5", "6")},
    ),
    Story(
        name="technology",
        main=_f(["{company} said on {day} that hackers had accessed the personal data of {nm} million customers.",
                 "The personal data of {nm} million {company} customers was accessed by hackers, the firm said on {day}."],
                ["Hackers accessed data of {nm} million {company} customers.", "{company} says {nm} million customers' data was accessed."]),
        details=(
            _f(["The stolen information includes {data}.", "The data taken includes {data}."],
               ["Stolen data includes {data}.", "The data taken includes {data}."]),
            _f(["Customers are being urged to change their passwords immediately.",
                "The company has urged customers to change their passwords."],
               ["Customers urged to change passwords.", "Customers told to change their passwords."]),
            _f(["The breach was discovered on {day2}, {ndays} days after it happened.",
                "The breach went unnoticed for {ndays} days."],
               ["The breach went unnoticed for {ndays} days.", "Breach discovered {ndays} days later."]),
        ),
        quotes=('"We sincerely apologise," said {oname}, the chief executive of {company}.',
                '"I only found out from the news," said customer {wname}, {wage}.'),
        background=("{company} has about {nstaff} employees.", "Data breaches have risen sharply in recent years.",
                    "The company said its payment systems were not affected.",
                    "Regulators said they were aware of the incident and were making enquiries.",
                    "Cyber security experts warned customers to be wary of suspicious emails."),
        scenes=("Customers logging in on {day} were met with a message asking them to reset their details.",),
        slots={"company": ("Telvana", "QuickCart", "Meridian Bank", "StreamBox", "Volt Mobile"),
               "nm": ("1.2", "3", "4.5", "11", "0.8"),
               "data": ("names, email addresses and phone numbers", "home addresses and dates of birth",
                        "passwords and partial card details"),
               "ndays": ("nine", "12", "20", "five"), "nstaff": ("3,000", "12,000", "800")},
    ),
    Story(
        name="entertainment",
        main=_f(["The {festival} in {city} was cancelled on {day}, just {ndays} days before it was due to start, because of {reason}.",
                 "Organisers of the {festival} in {city} cancelled this year's event on {day} because of {reason}."],
                ["{festival} in {city} cancelled because of {reason}.", "Organisers cancel {festival} because of {reason}."]),
        details=(
            _f(["Around {nk},000 tickets had been sold.", "More than {nk},000 tickets had already been sold."],
               ["{nk},000 tickets had been sold.", "{nk},000 tickets sold."]),
            _f(["Organisers said ticket holders would receive a full refund within {ndays2} days.",
                "Ticket holders will get a full refund within {ndays2} days, organisers said."],
               ["Full refund within {ndays2} days.", "Ticket holders to get a full refund within {ndays2} days."]),
        ),
        quotes=('"We are heartbroken," said festival director {oname}.',
                '"I had already booked my train and hotel," said fan {wname}, {wage}.'),
        background=("The festival was first held in {year} and attracts acts from around the world.",
                    "Last year's event sold out in {nhours} hours.",
                    "Local businesses had been preparing for one of their busiest weekends of the year.",
                    "Organisers said they hoped the event would return next summer."),
        scenes=("The stages were half-built and the fields already marked out when the news came on {day}.",),
        slots={"festival": ("Greenfield Music Festival", "Harbour Lights Festival", "Summer Sound Festival", "Northern Folk Festival"),
               "reason": ("flooding at the site", "poor ticket sales", "a dispute with the landowner", "safety concerns"),
               "ndays": ("three", "five", "ten", "12"), "nk": ("12", "25", "40", "8"),
               "ndays2": ("14", "28", "30"), "nhours": ("two", "six", "48")},
    ),
    Story(
        name="rescue",
        main=_f(["A {page}-year-old hiker was rescued from {mountain} on {day} after spending {nhours} hours stranded.",
                 "Rescuers reached a {page}-year-old hiker on {mountain} on {day} after {he} had been stranded for {nhours} hours."],
                ["Hiker, {page}, rescued from {mountain} after {nhours} hours.", "{Page}-year-old hiker stranded on {mountain} for {nhours} hours."]),
        details=(
            _f(["{He} had slipped and broken {his} ankle on a steep path.", "{He} slipped on a steep path and broke {his} ankle."],
               ["{He} slipped and broke {his} ankle on a steep path.", "{He} broke {his} ankle after slipping on a steep path."]),
            _f(["A helicopter crew winched {him} to safety shortly after dark.", "{He} was winched to safety by a helicopter crew."],
               ["A helicopter crew winched {him} to safety.", "{He} was winched to safety by helicopter."]),
            _f(["{He} was taken to hospital in {city} and is in a stable condition.",
                "{He} is in a stable condition in hospital in {city}."],
               ["{He} is in a stable condition in hospital.", "{He} is stable in hospital in {city}."]),
        ),
        quotes=('"{He} did everything right by staying put and calling for help," said {oname}, {orole}.',
                '"We heard someone shouting from the ridge," said fellow walker {wname}.'),
        background=("{mountain} is popular with walkers but conditions can change quickly.",
                    "Rescue teams in the area have been called out {ncall} times this year."),
        scenes=("The weather closed in quickly on {mountain} on {day} afternoon.",),
        slots={"mountain": ("Mount Ashby", "Ben Lorn", "Crag Peak", "Mount Harlow"),
               "nhours": ("six", "nine", "14", "20"), "ncall": ("40", "65", "90"),
               "orole": ("a mountain rescue team leader", "a coastguard spokesperson")},
    ),
)

GENERIC_BACKGROUND = (
    "Officials said they would review what happened in the coming weeks.",
    "More details are expected to be released later this week.",
    '"It\'s just so sad," said {wname2}, {wage2}, who lives nearby.',
    '"Everyone round here is talking about it," said local shop owner {wname2}.',
    "{city} has a population of about {pop}.",
    "The news comes a week after {unrelated}.",
    "Local media first reported the story on {day3}.",
    "{wname2}, {wage2}, a {wjob} who lives nearby, said the area was usually quiet.",
    "The story has been widely shared on social media.",
    '"We just want some answers," said {wname2}, {wage2}.',
    "Figures published last year showed the region lagging behind the national average.",
    "Council leaders are due to meet later this month.",
    "The area has changed a great deal over the past decade.",
    "A similar incident in {city2} in {year2} led to changes in the rules.",
)
BYLINES = ("By {rname}.", "By {rname} and {rname2}.", "By {rname} for {outlet}.",
           "By {rname}. Published: {date} {month} {year}.", "By {rname}, {desk} reporter.")

F_FIRST = ("Sarah", "Emma", "Claire", "Helen", "Priya", "Aisha", "Laura", "Rachel", "Maria", "Joanne", "Fiona", "Grace",
           "Anna", "Nicola", "Yasmin", "Karen", "Chloe", "Megan", "Lucy", "Amara", "Ingrid", "Rosa", "Mei", "Nadia")
M_FIRST = ("James", "David", "Mark", "Paul", "Andrew", "Tom", "Richard", "Simon", "Daniel", "Peter", "Ahmed", "Raj",
           "Michael", "Steven", "Gareth", "Luis", "Kofi", "Ben", "Oliver", "Neil", "Hamza", "Piotr", "Jonah", "Callum")
SURNAMES = ("Collins", "Patel", "Nguyen", "Okafor", "Schmidt", "Garcia", "Kowalski", "Murphy", "Chen", "Haddad",
            "Larsen", "Rossi", "Brennan", "Adeyemi", "Novak", "Silva", "Fischer", "Walsh", "Harper", "Whitfield",
            "Moreno", "Campbell", "Osei", "Fraser", "Lindqvist", "Doyle", "Kaur", "Bennett", "Ahmed", "Reyes")
CITIES = ("Denver", "Leeds", "Bristol", "Portland", "Glasgow", "Adelaide", "Cardiff", "Sheffield", "Tucson", "Halifax",
          "Norwich", "Dayton", "Exeter", "Spokane", "Dundee", "Wellington", "Albany", "Brighton", "Boise", "Perth")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")

POOLS: dict[str, tuple[str, ...]] = {
    "city": CITIES, "city2": CITIES, "city3": CITIES,
    "day": DAYS, "day2": DAYS, "day3": DAYS, "month": MONTHS,
    "year": tuple(str(y) for y in range(1962, 2021, 3)), "year2": tuple(str(y) for y in range(1990, 2023, 2)),
    "date": tuple(str(d) for d in range(1, 29)),
    "money": ("$25,000", "$80,000", "$150,000", "$2,000", "$12,000", "$6,500", "$40,000"),
    "bigmoney": ("$40 million", "$120 million", "$15 million"),
    "ordinal": ("third", "fourth", "fifth", "second"),
    "nyears": ("three", "five", "eight", "12", "20"),
    "pop": ("250,000", "120,000", "480,000", "90,000", "600,000"),
    "unrelated": ("a new mayor took office", "a major road in the area reopened after months of works",
                  "the city hosted a national food festival", "a new rail link opened"),
    "wjob": ("taxi driver", "cafe owner", "retired teacher", "student", "nurse", "builder"),
    "outlet": ("MailOnline", "CNN", "Reuters", "the Associated Press"),
    "desk": ("crime", "business", "science", "sports", "health", "transport"),
}
# Slots whose values are names of people, places, organisations or days: the article's entities.
PROPER = frozenset({"city", "city2", "city3", "day", "day2", "day3", "month", "outlet", "stormname", "company", "team",
                    "team2", "team3", "stadium", "uni", "journal", "althosp", "school", "school2", "zoo", "aname",
                    "festival", "mountain", "pname", "psur", "oname", "osur", "wname", "wname2", "rname", "rname2"})


@functools.cache
def _story_groups() -> list[list[int]]:
    """Indices of STORIES by story name, so each kind of story is drawn equally often."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(STORIES):
        groups.setdefault(s.name, []).append(i)
    return list(groups.values())


@functools.cache
def _story_pools() -> list[dict[str, tuple[str, ...]]]:
    return [{**POOLS, **s.slots} for s in STORIES]


def _people(fill: SlotFiller, ages: tuple[int, int]) -> None:
    """The story's person, an official, a witness and the reporters, with distinct surnames."""
    rng, pick = fill.rng, fill.pick
    start = int(rng.random() * len(SURNAMES))
    surnames = (SURNAMES * 2)[start : start + 6]
    gender = pick("MF")
    first = pick(M_FIRST if gender == "M" else F_FIRST)
    fill.set("pname", f"{first} {surnames[0]}", proper=True)
    fill.set("psur", surnames[0], proper=True)
    fill.set("page", str(ages[0] + int(rng.random() * (ages[1] - ages[0] + 1))))
    male = gender == "M"
    fill.set("person", "man" if male else "woman")
    fill.set("he", "he" if male else "she")
    fill.set("him", "him" if male else "her")
    fill.set("his", "his" if male else "her")
    for slot, surname in zip(("oname", "wname", "wname2", "rname", "rname2"), surnames[1:]):
        fill.set(slot, f"{pick(F_FIRST + M_FIRST)} {surname}", proper=True)
    fill.set("osur", surnames[1], proper=True)
    fill.set("wage", str(19 + int(rng.random() * 60)))
    fill.set("wage2", str(19 + int(rng.random() * 60)))


def _article(rng: random.Random, max_words: int) -> Document | None:
    """One article, or None when this draw misses the length or consistency bounds."""
    groups = _story_groups()
    group = groups[int(rng.random() * len(groups))]
    k = group[int(rng.random() * len(group))]
    story = STORIES[k]
    fill = SlotFiller(rng, _story_pools()[k], PROPER)
    pick = fill.pick
    _people(fill, story.ages)

    # The main fact and one to three of its details, in the story's order.
    n_details = min(len(story.details), pick((1, 2, 2, 3)))
    chosen = sorted(rng.sample(range(len(story.details)), n_details))
    specs = (story.main, *(story.details[i] for i in chosen))
    sentences = [fill(pick(s.src)) for s in specs]
    highlights = [fill(pick(s.ref)) for s in specs]
    facts = [Fact(s, shared_keywords(s, h)) for s, h in zip(sentences, highlights)]
    if any(len(f.keywords) < 2 for f in facts):
        return None

    preamble = fill(pick(BYLINES)) if rng.random() < 0.2 else ""
    lead = sentences[0]
    if not preamble and rng.random() < 0.12:
        lead = "(CNN) -- " + lead
        fill.names.append("CNN")
    # Usually the lead paragraph is the main fact (plus the first detail); sometimes a scene.
    paragraphs: list[str] = []
    rest = list(sentences[1:])
    if rng.random() < 0.8:
        paragraphs.append(f"{lead} {rest.pop(0)}" if rest and rng.random() < 0.4 else lead)
    else:
        paragraphs += [fill(pick(story.scenes)), lead]

    extras = list(story.quotes + story.background) + rng.sample(GENERIC_BACKGROUND, 3)
    rng.shuffle(extras)
    target = rng.triangular(MIN_WORDS + 5, max_words - 10, min(135, max_words - 10))
    words = sum(len(t.split()) for t in (preamble, *paragraphs, *rest))
    filler: list[str] = []
    while extras and words < target:
        text = fill(extras.pop())
        filler.append(text)
        words += len(text.split())
    if not MIN_WORDS <= words <= max_words:
        return None
    # Details keep their order; quotes and background go between and after them.
    body = rest + filler
    order = sorted(range(len(body)), key=lambda i: (i if i < len(rest) else rng.random() * len(rest) + 0.5))
    paragraphs += [body[i] for i in order]
    text = "\n\n".join(paragraphs)
    source = f"{preamble}\n\n{text}" if preamble else text
    reference = "\n".join(highlights)
    if not grounded(reference, source, fill.names):
        return None
    return make_document(source, reference, facts, preamble, entities_in(source, fill.names), story.name)


def generate_articles(n: int, seed: int, max_words: int = MAX_WORDS) -> list[Document]:
    """`n` distinct articles, the same for the same seed on every machine.

    `max_words` below the default shortens the longest articles, e.g. to fit a test model's
    context (configs pass it with `_partial_: true`).
    """
    if not MIN_WORDS + 30 <= max_words <= MAX_WORDS:
        raise InputError(f"generate_articles: max_words must be in [{MIN_WORDS + 30}, {MAX_WORDS}], got {max_words}")
    return distinct_documents(lambda rng: _article(rng, max_words), n, seed)


@dataclass
class CnnDmTask(SummarizationTask):
    """News highlights; `source='embedded'` uses `generate_articles`.

    Real data defaults to the hub's cnn_dailymail columns (article -> source, highlights ->
    reference) and splits (train, validation).
    """

    name: str = "cnndm"
    max_new_tokens: int = 64
    n_train: int = 3000
    n_eval: int = 300
    columns: Mapping[str, str] = field(default_factory=lambda: {"source": "article", "reference": "highlights"})
    splits: Mapping[str, str] = field(default_factory=lambda: {"train": "train", "eval": "validation"})
    prompt_template: str = "{source}\n\nSummary:"

    def embedded_generator(self) -> GeneratorFn:
        return self.generator or generate_articles
