"""Regenerate the demo sample in this folder: ESConv-schema support dialogues and ParlAI-format persona chats.

Written for this project from the hand-made pieces below (no text from ESConv or PersonaChat), so the demo
runs with no download. Run: python RUN/demo_data/make_demo_data.py
"""
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))

rng = random.Random(2026)
PROBLEMS = [
    # (emotion, problem, situation, seeker lines)
    ("anxiety", "job crisis", "My company announced layoffs and I think I am next.",
     ["Hi, I have been really worried lately.", "My company is laying people off and my team is small.",
      "I have two kids and a mortgage, so losing this job would hurt a lot.",
      "I work as an accountant and I have been there for six years.",
      "I have not updated my resume in a long time.", "I guess I could ask a former colleague for advice.",
      "Thank you, that actually makes me feel a bit calmer."]),
    ("sadness", "breakup with partner", "My girlfriend of three years left me last month.",
     ["Hello. I am not doing well today.", "My girlfriend broke up with me a few weeks ago.",
      "We lived together, so now the apartment feels empty.", "I keep looking at old photos on my phone.",
      "I love cooking but I have not cooked since she left.", "Maybe I could invite my brother over for dinner.",
      "Thanks for listening to me, I appreciate it."]),
    ("anxiety", "academic pressure", "Final exams are next week and I feel unprepared.",
     ["Hey, I am stressed about school.", "My final exams start next week and I am behind.",
      "I am a nursing student and the pharmacology exam is the hardest.",
      "I also work part time at a coffee shop, so I have little time.",
      "I usually study alone late at night.", "A study group could help, my roommate is in the same class.",
      "Okay, I will try to make a schedule tonight."]),
    ("depression", "ongoing depression", "I moved to a new city and I feel lonely all the time.",
     ["Hi there.", "I moved to a new city for work three months ago and I do not know anyone.",
      "Back home I had a big family and we had dinner together every sunday.",
      "I like hiking but I do not know the trails here.", "Most evenings I just watch tv by myself.",
      "I did not know there were hiking clubs, I might look one up.", "That is a good idea, thank you."]),
    ("anger", "problems with friends", "My best friend shared a secret I told her.",
     ["Hello, I am so upset right now.", "My best friend told other people something private I shared with her.",
      "We have been friends since high school, so it feels like a betrayal.",
      "I am a very private person and I do not open up easily.", "She texted me but I have not answered.",
      "Maybe I should tell her how much it hurt me.", "Yes, I think I will talk to her this weekend."]),
    ("fear", "health concern", "My father is in the hospital and the doctors are running tests.",
     ["Hi, can I talk to someone?", "My dad was taken to the hospital yesterday.",
      "He is seventy and he has had heart problems before.", "I am his only child so I handle everything.",
      "I have not slept much and I keep checking my phone.", "My aunt offered to help, I could let her.",
      "You are right, I need to take care of myself too."]),
    ("shame", "financial problem", "I spent too much on my credit card and cannot pay it.",
     ["Hey, this is hard to talk about.", "I have a lot of credit card debt and I hide it from my wife.",
      "I lost my job last year and used the card to pay bills.", "I work in construction now but the pay is lower.",
      "I feel embarrassed every time the bank calls.", "I could sit down with my wife and make a budget.",
      "Thank you, I feel less alone with this."]),
    ("sadness", "pandemic isolation", "I have been working from home alone for a year.",
     ["Hi, I feel kind of down.", "I have worked from home for a year and I barely see people.",
      "I live alone with my cat.", "I used to play soccer on weekends but the league stopped.",
      "Video calls with friends feel tiring.", "A walk with one friend outside sounds nice.",
      "I will text my friend about a walk tomorrow."]),
]
SUPPORT = {
    "Question": ["How long have you been feeling this way?", "Can you tell me more about what happened?",
                 "What do you usually do when you feel like this?", "Who else knows about this?"],
    "Restatement or Paraphrasing": ["So you feel that everything changed very quickly.",
                                    "It sounds like you are carrying this mostly by yourself."],
    "Reflection of feelings": ["That sounds really stressful and scary.", "I can hear how hurt you are.",
                               "It makes sense that you feel overwhelmed."],
    "Self-disclosure": ["I went through something similar once and it was very hard for me.",
                        "I remember feeling the same way when I moved away from home."],
    "Affirmation and Reassurance": ["You are doing the best you can, and that matters.",
                                    "It is brave of you to talk about this."],
    "Providing Suggestions": ["Maybe you could write down a small plan for the next few days.",
                              "Talking to someone you trust might make this lighter.",
                              "Taking short breaks to rest could help you think more clearly."],
    "Information": ["Many people feel this way after a big change, it is very common.",
                    "Some communities have free support groups for situations like yours."],
    "Others": ["Hello, how are you doing today?", "You are welcome, take care of yourself."],
}
ORDER = ["Others", "Question", "Reflection of feelings", "Question", "Restatement or Paraphrasing",
         "Self-disclosure", "Providing Suggestions", "Affirmation and Reassurance", "Information", "Providing Suggestions"]

def dialogue(problem, variant):
    emotion, ptype, situation, seeker = problem
    dialog = []
    for i, line in enumerate(seeker):
        dialog.append({"speaker": "seeker", "annotation": {}, "content": line})
        n_sup = 2 if (i + variant) % 3 == 0 else 1
        for j in range(n_sup):
            strat = "Others" if i == 0 and j == 0 else ORDER[(i + j + variant) % len(ORDER)]
            if i == len(seeker) - 1:
                strat = "Others"
            options = SUPPORT[strat]
            dialog.append({"speaker": "supporter", "annotation": {"strategy": strat},
                           "content": options[(i + j + variant) % len(options)]})
            if i == len(seeker) - 1:
                break
    return {"experience_type": "Current Experience", "emotion_type": emotion, "problem_type": ptype,
            "situation": situation, "survey_score": {"seeker": {"initial_emotion_intensity": "4"}}, "dialog": dialog}

data = [dialogue(p, v) for v in range(3) for p in PROBLEMS]
json.dump(data, open(os.path.join(HERE, "ESConv_sample.json"), "w"), indent=1)

PERSONAS = [
    ["i work as a nurse.", "i have two dogs.", "i love hiking on weekends.", "my mother lives with me."],
    ["i am a college student.", "i play the guitar.", "i live in a small apartment.", "i drink a lot of coffee."],
    ["i am a retired teacher.", "i have three grandchildren.", "i enjoy gardening.", "i volunteer at a library."],
    ["i moved to a new city last year.", "i work in a bank.", "i like cooking italian food.", "i run every morning."],
    ["i have a daughter.", "i lost my job recently.", "i like to paint.", "i am learning spanish."],
    ["i am a software engineer.", "i have a cat named max.", "i like video games.", "i grew up on a farm."],
]
LINES = {
    "i work as a nurse.": "i just finished a long shift at the hospital .",
    "i have two dogs.": "my two dogs were waiting for me at the door .",
    "i love hiking on weekends.": "this weekend i am going hiking again .",
    "my mother lives with me.": "my mom cooked dinner for us tonight .",
    "i am a college student.": "i have classes all day tomorrow .",
    "i play the guitar.": "i practiced guitar for an hour today .",
    "i live in a small apartment.": "my apartment is tiny but cozy .",
    "i drink a lot of coffee.": "i am on my fourth coffee already .",
    "i am a retired teacher.": "i taught history for thirty years .",
    "i have three grandchildren.": "my grandchildren visit me every sunday .",
    "i enjoy gardening.": "my tomatoes are finally growing .",
    "i volunteer at a library.": "i help kids read at the library .",
    "i moved to a new city last year.": "i am still getting used to this city .",
    "i work in a bank.": "work at the bank was busy today .",
    "i like cooking italian food.": "i made pasta from scratch tonight .",
    "i run every morning.": "i ran five miles this morning .",
    "i have a daughter.": "my daughter started school this week .",
    "i lost my job recently.": "i am looking for a new job right now .",
    "i like to paint.": "i painted a picture of the lake .",
    "i am learning spanish.": "i am practicing my spanish every day .",
    "i am a software engineer.": "i write code for a living .",
    "i have a cat named max.": "max my cat sleeps on my keyboard .",
    "i like video games.": "i played video games all night .",
    "i grew up on a farm.": "i grew up with cows and chickens .",
}
out = []
for d in range(12):
    mine = PERSONAS[d % 6]; partner = PERSONAS[(d + 1 + d // 6) % 6]
    if partner is mine: partner = PERSONAS[(d + 2) % 6]
    n = 1
    for s in mine:
        out.append(f"{n} your persona: {s}"); n += 1
    for s in partner:
        out.append(f"{n} partner's persona: {s}"); n += 1
    for k in range(4):
        out.append(f"{n} {LINES[partner[(k + d) % 4]]}\t{LINES[mine[(k + d) % 4]]}"); n += 1
open(os.path.join(HERE, "personachat_sample_both_original.txt"), "w").write("\n".join(out) + "\n")
print(len(data), sum(len(d["dialog"]) for d in data))
