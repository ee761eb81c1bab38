#!/usr/bin/env python3
"""Seeded generator of Russian contact data with ground truth, for the identity benchmark.

    python bench/identity/generate.py --persons 5000 --seed 1 --out /tmp/ru

N persons (households of one to three people) are spread over four CSV files the way
a small business has them, each person in at least one:

* ``sheet.csv``: the client base kept by a manager (cp1251, ``;``, CRLF): №, ФИО in
  any order and case, Телефон in many spellings (sometimes two numbers), E-mail,
  Город with aliases, Дата рождения (DD.MM.YYYY). A few people were entered twice.
* ``mailing.csv``: an e-mail service export (UTF-8, ``,``): Email (the record id),
  First Name, Last Name (often transliterated, sometimes empty), Status.
* ``forms.csv``: site form submissions (UTF-8 with BOM, ``,``): tranid, Имя (often a
  first name only, often a diminutive), Телефон, Email, Город, Дата; one person may
  submit several times.
* ``sms.csv``: an SMS service list (UTF-8, ``;``): Телефон (the record id), Имя.

``truth.csv`` holds ``source,external_id,person_id`` for every row, and ``hub.yaml``
with ``mappings/*.yaml`` configures hub's csv connector for the four files.
``--holdback K`` keeps the K newest form submissions out of ``forms.csv`` and writes
them to ``forms-new.csv`` / ``truth-new.csv`` (for an incremental run). The rates of
every hard case are constants below and are described in ``README.md``.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import datetime as dt
import itertools
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

# ----------------------------------------------------------------------- rates
#
# Shares are of persons unless said otherwise. They aim at what a real small-business
# base looks like; README.md explains each.

HOUSEHOLD_SIZES = ((1, 0.78), (2, 0.16), (3, 0.06))  # share of households
SHARED_PHONE_HOUSEHOLDS = 0.45  # households of 2+ with one home/shared phone used by all
SHARED_PHONE_IS_LANDLINE = 0.6  # the rest share one mobile (an elderly parent uses the child's)
SHARED_EMAIL_COUPLES = 0.15  # couples who use one e-mail address
DAUGHTER_NAMED_AFTER_MOTHER = 0.25  # in a household of three with a daughter
NAMESAKE_SHARE = 0.01  # persons who get the full name of an unrelated person
NAMESAKE_SAME_CITY = 0.3  # of those, also in the same city
FOREIGNER_SHARE = 0.02  # Latin-only names, no patronymic
TATAR_SHARE = 0.06
CAUCASIAN_SHARE = 0.04
HAS_MOBILE = 0.92
HAS_EMAIL = 0.78
CHANGED_EMAIL = 0.06  # of persons with an e-mail: an older address still in use somewhere
HAS_BIRTHDAY_IN_SHEET = 0.5

IN_SHEET, IN_MAILING, IN_FORMS, IN_SMS = 0.65, 0.75, 0.55, 0.65  # mailing: of persons with an e-mail
SHEET_DUPLICATE = 0.03  # of sheet persons: a second row for the same person
FORMS_EXTRA_SUBMISSION = 0.5  # chance of each further submission (geometric)

NAME_TYPO = 0.02  # one letter wrong in a typed name (sheet, forms)
YO_AS_E = 0.5  # ё written as е
UPPER_CASE, LOWER_CASE = 0.08, 0.04  # ФИО cells in the sheet
EMAIL_CASE_SPACE = 0.12  # e-mail typed with capitals or spaces around it
EMAIL_DOMAIN_TYPO = 0.025  # in the mailing export (signed up with a typo)
TWO_PHONES_IN_CELL = 0.05  # sheet cells with the mobile and the home phone

# ------------------------------------------------------------------- name pools

SLAVIC_SURNAMES = (
    "Иванов Смирнов Кузнецов Попов Васильев Петров Соколов Михайлов Новиков Фёдоров Морозов Волков "
    "Алексеев Лебедев Семёнов Егоров Павлов Козлов Степанов Николаев Орлов Андреев Макаров Никитин "
    "Захаров Зайцев Соловьёв Борисов Яковлев Григорьев Романов Воробьёв Сергеев Кузьмин Фролов "
    "Александров Дмитриев Королёв Гусев Киселёв Ильин Максимов Поляков Сорокин Виноградов Ковалёв "
    "Белов Медведев Антонов Тарасов Жуков Баранов Филиппов Комаров Давыдов Беляев Герасимов Богданов "
    "Осипов Сидоров Матвеев Титов Марков Миронов Крылов Куликов Карпов Власов Мельников Денисов "
    "Гаврилов Тихонов Казаков Афанасьев Данилов Савельев Тимофеев Фомин Чернов Абрамов Мартынов "
    "Ефимов Федотов Щербаков Назаров Калинин Исаев Чернышёв Быков Маслов Родионов Коновалов Лазарев "
    "Воронин Климов Филатов Пономарёв Голубев Кудрявцев Прохоров Наумов Потапов Журавлёв Овчинников "
    "Трофимов Леонов Соболев Ермаков Колесников Гончаров Емельянов Никифоров Грачёв Котов Гришин "
    "Ефремов Архипов Громов Кириллов Малышев Панов Моисеев Румянцев Акимов Кондратьев Бирюков Горбунов "
    "Анисимов Ерёмин Тихомиров Галкин Лукьянов Михеев Скворцов Юдин Белоусов Нестеров Симонов "
    "Прокофьев Харитонов Князев Цветков Левин Митрофанов Воронцов Аксёнов Софронов Мальцев Логинов "
    "Горшков Савин Краснов Майоров Демидов Елисеев Рыбаков Сафонов Плотников Дёмин Хохлов Фадеев "
    "Молчанов Игнатов Литвинов Ершов Ушаков Дементьев Рябов Мухин Калашников Леонтьев Лобанов Кузин "
    "Корнилов Евдокимов Бородин Платонов Некрасов Балашов Бобров Жданов Блинов Игнатьев Коротков "
    "Муравьёв Крюков Беляков Богомолов Дроздов Лавров Зуев Петухов Ларин Никулин Серов Терентьев "
    "Зотов Устинов Фокин Самойлов Константинов Сахаров Шишкин Самсонов Черкасов Чистяков Носов "
    "Высоцкий Ковальский Вишневский Шевченко Бондаренко Ткаченко Кравченко Мельник Ким Пак Цой Толстой"
).split()
TATAR_SURNAMES = (
    "Хабибуллин Галиев Сафин Закиров Шарипов Гарипов Валиев Ахметов Хайруллин Гилязов Мухаметшин "
    "Нуриев Файзуллин Зарипов Гайнутдинов Садыков Исмагилов Юсупов Абдуллин Камалов"
).split()
CAUCASIAN_SURNAMES = (
    "Гасанов Алиев Мамедов Абдуллаев Магомедов Рамазанов Гаджиев Оганесян Петросян Саакян Григорян "
    "Арутюнян Кварацхелия Гелашвили Беридзе Цховребов Дзагоев Хетагуров"
).split()

#: Stems of the long tail: most people do not carry one of the two hundred commonest surnames.
SURNAME_STEMS = (
    "Агап Аким Андрон Анфил Архип Афон Бажен Барыш Бирюч Бобр Болот Бор Брус Булыч Вавил Ваган Варлам Вахр "
    "Ведерн Верш Ветл Вишн Воробь Гаврил Гвозд Глад Голов Горд Граб Груш Губ Гуль Дегтяр Дерев Дорон Дуб Дуд "
    "Ерем Ерш Ефрем Жар Жил Забол Звер Зим Злат Зуб Кабан Калин Капуст Карас Кедр Клоч Кожев Колес Корн Кос "
    "Крот Круп Крюк Кувшин Кукушк Лап Лис Лоб Лыс Люб Мак Малин Маслен Мерк Мех Мешк Мох Овс Окун Олен Пахом "
    "Печ Пирог Полев Полян Пушк Рыж Сад Сверч Свир Сед Сит Слав Сом Стрел Сух Сыч Тетер Ткач Трет Туч Тюр Уш "
    "Хлеб Холод Хом Чиж Чуд Шапк Шар Шест Шил Шуб Щегл Щук Ябл Ястреб Бурлак Валуй Вдов Глух Дьяч Зотик "
    "Игнат Калуг Камыш Кирьян Клен Коврыг Кондак Коржак Котел Кречет Кудин Лапш Лужк Медник Мигун Мосол "
    "Набок Нечай Обух Огород Пестер Плешак Подкол Пыж Рогож Рудак Рукавиш Самар Сивак Скорняк Смолян Сорок "
    "Сусл Тарас Тимош Тугар Усач Фирс Хват Чебот Чепур Шадр Шемяк Шорох Юрк Якуш"
).split()
SURNAME_SUFFIXES = ("ов", "ин", "овский", "енко", "ых", "ников", "ков")
TATAR_STEMS = ("Абдрахман Гимад Ахмад Вахит Газиз Зариф Мансур Нигмат Сабир Фаиз Хаким Шакир Юнус Карим Салих "
               "Габбас Гариф Рахим Садык Хасан Гилман Ильяс Латып Мингаз Мустаф Нурулл Сайфулл Хабибулл").split()
CAUCASIAN_STEMS = ("Акоп Аветис Мкртч Саркис Карап Вардан Геворк Мартирос Ованес Хачатур Погос Айрапет Минас "
                   "Абдулл Гусейн Исмаил Рустам Султан Керим Мурад Омар Расул Гамзат Курбан").split()


def _surname(stem: str, suffix: str) -> str:
    if suffix == "ов" and stem[-1] in "жшчщцйь":
        return stem.rstrip("ь") + "ев"
    if suffix == "овский" and stem[-1] in "жшчщцйь":
        return stem.rstrip("ь") + "евский"
    if suffix in ("ников", "ков") and stem[-1] in "кгх":
        return stem + "ов"
    return stem + suffix


SLAVIC_TAIL = sorted({_surname(stem, suffix) for stem in SURNAME_STEMS for suffix in SURNAME_SUFFIXES})
TATAR_TAIL = sorted({stem + ("ин" if stem.endswith("улл") else "ов") for stem in TATAR_STEMS})
CAUCASIAN_TAIL = sorted({stem + ("ян" if i < 13 else "ов") for i, stem in enumerate(CAUCASIAN_STEMS)})
COMMON_SURNAME_SHARE = 0.3  # of the common list vs the long tail

MALE_NAMES = (
    "Александр Сергей Дмитрий Андрей Алексей Максим Евгений Иван Михаил Владимир Артём Николай Павел "
    "Денис Роман Игорь Никита Олег Кирилл Илья Антон Виктор Юрий Вадим Егор Константин Даниил Василий "
    "Вячеслав Владислав Григорий Георгий Станислав Пётр Фёдор Борис Виталий Валерий Геннадий Анатолий "
    "Леонид Матвей Тимофей Глеб Марк Лев Степан Семён Ярослав Арсений"
).split()
FEMALE_NAMES = (
    "Елена Ольга Наталья Татьяна Екатерина Анна Мария Ирина Юлия Светлана Анастасия Дарья Марина "
    "Ксения Виктория Алёна Евгения Надежда Людмила Галина Валентина Любовь Александра Полина Вера "
    "Кристина Алина Софья Вероника Лариса Оксана Яна Елизавета Маргарита Алла Нина Жанна Диана Варвара"
).split()
TATAR_MALE = "Ринат Марат Рустам Тимур Айдар Ильдар Рамиль Руслан Альберт Азат Ильнур Булат Эдуард".split()
TATAR_FEMALE = "Гульнара Альбина Эльвира Лилия Алсу Гузель Айгуль Резеда Динара Лейсан Регина Камила".split()
CAUCASIAN_MALE = "Рашид Магомед Ашот Арсен Тигран Гурам Заур Ислам Ахмед Шамиль Давид Георгий".split()
CAUCASIAN_FEMALE = "Лейла Нино Гаянэ Асия Мадина Зарема Патимат Сабина Карина Ануш Тамара Эльмира".split()

#: Foreigners with Latin-only names: first names by gender and surnames, paired at random.
FOREIGN_MALE = ("John Michael David Thomas Jean Marco Li Kenji Ahmet Aziz Peter James Daniel Lucas Luca Pierre "
                "Hans Jan Wei Hiroshi Mehmet Carlos Jose Ali Omar").split()
FOREIGN_FEMALE = ("Anna Emily Sophie Laura Maria Yuki Olivia Chen Dilnoza Emma Julia Sarah Claire Elena Lucia "
                  "Mei Aiko Fatima Leila Ayse Ines Marta Eva Nora Hana").split()
FOREIGN_SURNAMES = ("Smith Brown Miller Mueller Dupont Rossi Wei Tanaka Schmidt Johnson Martin Garcia Fernandez "
                    "Sato Wilson Jing Yilmaz Karimov Rakhimova Novak Taylor Anderson Thompson Moore Lee Wang Zhang "
                    "Liu Suzuki Kim Park Nguyen Lopez Gonzalez Bianchi Romano Weber Fischer Becker Wagner Dubois "
                    "Moreau Laurent Kowalski Nowak Horvath Jensen Hansen Silva Santos Costa Demir Kaya Celik "
                    "Usmanov Tashkentova Alimov Nazarova").split()

DIMINUTIVES = {
    "Александр": ["Саша", "Шура", "Саня"], "Александра": ["Саша", "Шура"], "Дарья": ["Даша"],
    "Евгений": ["Женя"], "Евгения": ["Женя"], "Мария": ["Маша"], "Наталья": ["Наташа"],
    "Екатерина": ["Катя"], "Анастасия": ["Настя"], "Елена": ["Лена"], "Ольга": ["Оля"],
    "Татьяна": ["Таня"], "Юлия": ["Юля"], "Дмитрий": ["Дима"], "Михаил": ["Миша"], "Сергей": ["Серёжа"],
    "Алексей": ["Лёша"], "Владимир": ["Вова", "Володя"], "Николай": ["Коля"], "Иван": ["Ваня"],
    "Павел": ["Паша"], "Анна": ["Аня"], "Ирина": ["Ира"], "Светлана": ["Света"], "Ксения": ["Ксюша"],
    "Виктория": ["Вика"], "Валентина": ["Валя"], "Людмила": ["Люда"], "Галина": ["Галя"],
    "Надежда": ["Надя"], "Любовь": ["Люба"], "Константин": ["Костя"], "Вячеслав": ["Слава"],
    "Владислав": ["Влад"], "Станислав": ["Стас"], "Григорий": ["Гриша"], "Георгий": ["Жора"],
    "Пётр": ["Петя"], "Фёдор": ["Федя"], "Максим": ["Макс"], "Артём": ["Тёма"], "Роман": ["Рома"],
    "Валерий": ["Валера"], "Анатолий": ["Толя"], "Борис": ["Боря"], "Леонид": ["Лёня"],
    "Василий": ["Вася"], "Полина": ["Поля"], "Кристина": ["Кристи"], "Елизавета": ["Лиза"],
    "Маргарита": ["Рита"], "Софья": ["Соня"], "Варвара": ["Варя"], "Даниил": ["Даня"],
    "Марина": ["Мариша"], "Алёна": ["Алёнка"], "Эльвира": ["Эля"], "Гульнара": ["Гуля"],
    "Магомед": ["Магомед"], "Тимофей": ["Тима"], "Семён": ["Сёма"], "Степан": ["Стёпа"],
}

#: Conventional English spellings used besides transliteration.
ENGLISH_FORMS = {
    "Александр": ["Alexander", "Alex"], "Юлия": ["Julia"], "Мария": ["Maria"], "Евгений": ["Eugene"],
    "Михаил": ["Michael"], "Елена": ["Helen"], "Екатерина": ["Kate", "Catherine"], "Наталья": ["Natalia"],
    "Ксения": ["Xenia"], "Пётр": ["Peter"], "Татьяна": ["Tatiana"], "Дарья": ["Daria"], "Анна": ["Ann"],
    "Дмитрий": ["Dmitry"], "Сергей": ["Sergei"], "Андрей": ["Andrew"], "Алексей": ["Alexey"],
    "Софья": ["Sophia"], "Георгий": ["George"], "Иван": ["John"], "Павел": ["Paul"],
}

PATRONYMIC_STEMS = {
    "Пётр": "Петр", "Павел": "Павл", "Лев": "Льв", "Юрий": "Юрь", "Валерий": "Валерь", "Виталий": "Виталь",
    "Геннадий": "Геннадь", "Василий": "Василь", "Евгений": "Евгень", "Анатолий": "Анатоль",
    "Дмитрий": "Дмитри", "Георгий": "Георги", "Григорий": "Григорь", "Арсений": "Арсень",
}

CITIES = [  # (canonical, weight, spellings a person might type)
    ("Москва", 32, ["Москва", "Мск", "москва", "г. Москва", "МОСКВА", "Moscow"]),
    ("Санкт-Петербург", 14, ["Санкт-Петербург", "СПб", "Питер", "С-Петербург", "спб", "Санкт Петербург"]),
    ("Новосибирск", 5, ["Новосибирск", "Нск"]),
    ("Екатеринбург", 5, ["Екатеринбург", "Екб", "екатеринбург"]),
    ("Казань", 5, ["Казань"]),
    ("Нижний Новгород", 4, ["Нижний Новгород", "Н. Новгород", "Нижний"]),
    ("Краснодар", 4, ["Краснодар"]),
    ("Самара", 3, ["Самара"]),
    ("Ростов-на-Дону", 3, ["Ростов-на-Дону", "Ростов", "РнД"]),
    ("Уфа", 3, ["Уфа"]),
    ("Воронеж", 3, ["Воронеж"]),
    ("Пермь", 3, ["Пермь"]),
    ("Челябинск", 3, ["Челябинск"]),
    ("Красноярск", 2, ["Красноярск"]),
    ("Тюмень", 2, ["Тюмень"]),
    ("Махачкала", 2, ["Махачкала"]),
    ("Калининград", 2, ["Калининград"]),
    ("Сочи", 2, ["Сочи"]),
    ("Химки", 2, ["Химки", "г. Химки"]),
    ("Подольск", 1, ["Подольск"]),
]
CITY_CODES = {"Москва": "495", "Санкт-Петербург": "812", "Новосибирск": "383", "Екатеринбург": "343",
              "Казань": "843", "Нижний Новгород": "831", "Краснодар": "861", "Самара": "846"}
#: Mobile operator codes (930 left out: parts of its range are not allocated).
MOBILE_CODES = [str(c) for c in itertools.chain(range(900, 940), range(950, 970), range(977, 1000)) if c != 930]

EMAIL_DOMAINS = [("mail.ru", 30), ("yandex.ru", 20), ("gmail.com", 24), ("bk.ru", 5), ("inbox.ru", 4),
                 ("list.ru", 4), ("rambler.ru", 4), ("ya.ru", 4), ("icloud.com", 3), ("outlook.com", 2)]
DOMAIN_TYPOS = {"gmail.com": ["gmial.com", "gmail.co", "gmai.com"], "mail.ru": ["mail.r", "mial.ru", "mail.ry"],
                "yandex.ru": ["yandex.ry", "yandx.ru", "yadex.ru"], "rambler.ru": ["rambler.ry"],
                "bk.ru": ["bk.ry"], "inbox.ru": ["inbox.r"], "list.ru": ["lst.ru"]}

TRANSLIT_POPULAR = dict(zip(
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    "a b v g d e yo zh z i y k l m n o p r s t u f kh ts ch sh sch _ y _ e yu ya".split(),
))
TRANSLIT_PASSPORT = {**TRANSLIT_POPULAR, "ё": "e", "й": "i", "щ": "shch", "ю": "iu", "я": "ia", "ы": "y"}
TRANSLIT_LOOSE = {**TRANSLIT_POPULAR, "ё": "e", "х": "h", "щ": "sh", "ь": "'", "ц": "c", "й": "i"}
TRANSLITS = (TRANSLIT_POPULAR, TRANSLIT_PASSPORT, TRANSLIT_LOOSE)

SIMILAR_LETTERS = {"е": "и", "и": "е", "а": "о", "о": "а", "т": "д", "д": "т", "с": "з", "з": "с", "н": "м",
                   "м": "н", "л": "п", "в": "ф", "ф": "в", "к": "г", "г": "к", "ш": "щ", "я": "а", "ь": "ъ"}


def translit(text: str, scheme: dict[str, str]) -> str:
    out = []
    for ch in text:
        low = ch.lower()
        if low in scheme:
            part = scheme[low].replace("_", "")
            out.append(part.capitalize() if ch != low and part else part)
        else:
            out.append(ch)
    return "".join(out)


def feminine(surname: str) -> str:
    if surname.endswith(("ов", "ев", "ёв", "ин", "ын")):
        return surname + "а"
    if surname.endswith("ский"):
        return surname[:-4] + "ская"
    if surname.endswith("цкий"):
        return surname[:-4] + "цкая"
    if surname.endswith("ой"):
        return surname[:-2] + "ая"
    return surname  # Шевченко, Ким, Оганесян, Мельник, Кварацхелия


def patronymic(father: str, gender: str) -> str:
    stem = PATRONYMIC_STEMS.get(father)
    if father == "Илья":
        return "Ильич" if gender == "M" else "Ильинична"
    if father == "Никита":
        return "Никитич" if gender == "M" else "Никитична"
    if stem is None:
        if father.endswith("й"):
            stem = father[:-1]
            return stem + ("евич" if gender == "M" else "евна")
        stem = father
    if stem[-1] in "ьи":
        base = stem[:-1] + ("ь" if stem[-1] == "ь" else "и")
        return base + ("евич" if gender == "M" else "евна")
    if stem[-1] in "жшчщц":
        return stem + ("евич" if gender == "M" else "евна")
    return stem + ("ович" if gender == "M" else "овна")


class Weighted:
    """``random.choices`` with precomputed cumulative weights (Zipf-like popularity by default)."""

    def __init__(self, items, weights=None, zipf: float = 0.9):
        self.items = list(items)
        weights = weights or [1 / (rank + 1) ** zipf for rank in range(len(self.items))]
        self.cum = list(itertools.accumulate(weights))

    def __call__(self, rng: random.Random):
        return self.items[bisect.bisect(self.cum, rng.random() * self.cum[-1])]


class Surnames:
    """A common list (Zipf-like popularity) and a long tail (uniform), mixed."""

    def __init__(self, common, tail):
        self.common = Weighted(common, zipf=0.5)
        self.tail = tail

    def __call__(self, rng: random.Random) -> str:
        if rng.random() < COMMON_SURNAME_SHARE:
            return self.common(rng)
        return rng.choice(self.tail)


SLAVIC_SURNAME = Surnames(SLAVIC_SURNAMES, SLAVIC_TAIL)
TATAR_SURNAME = Surnames(TATAR_SURNAMES, TATAR_TAIL)
CAUCASIAN_SURNAME = Surnames(CAUCASIAN_SURNAMES, CAUCASIAN_TAIL)
FIRST = {
    ("slavic", "M"): Weighted(MALE_NAMES, zipf=0.6), ("slavic", "F"): Weighted(FEMALE_NAMES, zipf=0.6),
    ("tatar", "M"): Weighted(TATAR_MALE, zipf=0.6), ("tatar", "F"): Weighted(TATAR_FEMALE, zipf=0.6),
    ("caucasian", "M"): Weighted(CAUCASIAN_MALE, zipf=0.6), ("caucasian", "F"): Weighted(CAUCASIAN_FEMALE, zipf=0.6),
}
CITY = Weighted(CITIES, weights=[c[1] for c in CITIES])
DOMAIN = Weighted([d for d, _ in EMAIL_DOMAINS], weights=[w for _, w in EMAIL_DOMAINS])


@dataclass
class Person:
    id: str
    gender: str
    origin: str  # slavic | tatar | caucasian | foreign
    last: str
    first: str
    middle: str  # empty for foreigners
    birthday: dt.date
    city: str
    mobile: str | None = None  # ten digits
    home: str | None = None  # ten digits, shared by the household
    email: str | None = None
    old_email: str | None = None
    shares_email: bool = False
    namesake_of: str | None = None
    household: int = 1


@dataclass
class Output:
    rows: dict[str, list[list[str]]] = field(default_factory=lambda: {s: [] for s in SOURCES})
    truth: list[tuple[str, str, str]] = field(default_factory=list)


SOURCES = ("sheet", "mailing", "forms", "sms")
HEADERS = {
    "sheet": ["№", "ФИО", "Телефон", "E-mail", "Город", "Дата рождения"],
    "mailing": ["Email", "First Name", "Last Name", "Status"],
    "forms": ["tranid", "Имя", "Телефон", "Email", "Город", "Дата"],
    "sms": ["Телефон", "Имя"],
}
FILES = {  # name: (encoding, delimiter, line terminator)
    "sheet": ("cp1251", ";", "\r\n"),
    "mailing": ("utf-8", ",", "\n"),
    "forms": ("utf-8-sig", ",", "\n"),
    "sms": ("utf-8", ";", "\n"),
}


class Generator:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.phones: set[str] = set()
        self.emails: set[str] = set()
        self.persons: list[Person] = []

    # ------------------------------------------------------------- persons

    def new_phone(self, landline_city: str | None = None) -> str:
        rng = self.rng
        while True:
            if landline_city:
                code = CITY_CODES.get(landline_city, "495")
                number = code + str(rng.randrange(2_000_000, 9_999_999))
            else:
                number = rng.choice(MOBILE_CODES) + f"{rng.randrange(10_000_000):07d}"
            if number not in self.phones:
                self.phones.add(number)
                return number

    def new_email(self, person: Person, nickname: bool = False) -> str:
        rng = self.rng
        scheme = rng.choice(TRANSLITS)
        first = translit(person.first, scheme).lower().replace("'", "") if person.origin != "foreign" else person.first.lower()
        last = translit(person.last, scheme).lower().replace("'", "") if person.origin != "foreign" else person.last.lower()
        first = first.replace("ü", "u")
        last = last.replace("ü", "u")
        for attempt in range(50):
            pattern = rng.random()
            year = person.birthday.year
            if nickname or attempt > 20:
                local = rng.choice(["sunny", "kitty", "best", "happy", "lucky", "dark", "star", "super"]) + \
                    rng.choice(["_", ".", ""]) + rng.choice([first, last, "mama", "girl", "boy", "cat"]) + str(rng.randrange(1, 9999))
            elif pattern < 0.25:
                local = f"{first}.{last}"
            elif pattern < 0.45:
                local = f"{last}{year % 100:02d}"
            elif pattern < 0.6:
                local = f"{first[0]}.{last}"
            elif pattern < 0.75:
                local = f"{first}_{last[:4]}{rng.randrange(1, 100)}"
            elif pattern < 0.85:
                local = f"{first}{year}"
            else:
                local = f"{last}.{first[0]}{rng.randrange(1, 1000)}"
            address = f"{local}@{DOMAIN(rng)}"
            if address not in self.emails:
                self.emails.add(address)
                return address
        raise RuntimeError("could not draw a unique e-mail")

    def person(self, number: int, origin: str, gender: str, last: str, first: str | None = None,
               father: str | None = None, city: str | None = None, age: tuple[int, int] = (18, 75)) -> Person:
        rng = self.rng
        if origin == "foreign":
            first = first or rng.choice(FOREIGN_MALE if gender == "M" else FOREIGN_FEMALE)
            last, middle = rng.choice(FOREIGN_SURNAMES), ""
        else:
            first = first or FIRST[(origin, gender)](rng)
            father_pool = origin if origin != "foreign" else "slavic"
            father = father or FIRST[(father_pool, "M")](rng)
            middle = patronymic(father, gender)
        today = dt.date(2026, 1, 1)
        birthday = today - dt.timedelta(days=rng.randrange(age[0] * 365, age[1] * 365))
        return Person(id=f"p{number:07d}", gender=gender, origin=origin, last=last, first=first, middle=middle,
                      birthday=birthday, city=city or CITY(rng)[0])

    def draw_origin(self) -> str:
        roll = self.rng.random()
        if roll < FOREIGNER_SHARE:
            return "foreign"
        if roll < FOREIGNER_SHARE + TATAR_SHARE:
            return "tatar"
        if roll < FOREIGNER_SHARE + TATAR_SHARE + CAUCASIAN_SHARE:
            return "caucasian"
        return "slavic"

    def surname(self, origin: str) -> str:
        if origin == "tatar":
            return TATAR_SURNAME(self.rng)
        if origin == "caucasian":
            return CAUCASIAN_SURNAME(self.rng)
        return SLAVIC_SURNAME(self.rng)

    def make_persons(self, count: int) -> None:
        rng = self.rng
        sizes, weights = zip(*HOUSEHOLD_SIZES)
        while len(self.persons) < count:
            size = min(rng.choices(sizes, weights)[0], count - len(self.persons))
            origin = self.draw_origin()
            base = len(self.persons) + 1
            if origin == "foreign":
                size = 1
            head_gender = rng.choice("MF")
            surname = self.surname(origin) if origin != "foreign" else ""
            household: list[Person] = []
            head = self.person(base, origin, head_gender, surname if head_gender == "M" else feminine(surname),
                               age=(25, 75) if size > 1 else (18, 75))
            household.append(head)
            if size >= 2:
                other = "F" if head_gender == "M" else "M"
                spouse_surname = surname if rng.random() < 0.85 else self.surname(origin)  # kept her own
                spouse_last = feminine(spouse_surname) if other == "F" else spouse_surname
                household.append(self.person(base + 1, origin, other, spouse_last, city=head.city,
                                             age=(max(18, 2026 - head.birthday.year - 8), 2026 - head.birthday.year + 8)))
            if size >= 3:
                father = head if head.gender == "M" else household[1]
                mother = household[1] if head.gender == "M" else head
                child_gender = rng.choice("MF")
                first = mother.first if child_gender == "F" and rng.random() < DAUGHTER_NAMED_AFTER_MOTHER else None
                parent_age = 2026 - head.birthday.year
                child_last = surname if child_gender == "M" else feminine(surname)
                household.append(self.person(base + 2, origin, child_gender, child_last, first=first,
                                             father=father.first, city=head.city,
                                             age=(18, max(19, parent_age - 20))))
            for member in household:
                member.household = size
                member.mobile = self.new_phone() if rng.random() < HAS_MOBILE else None
                if rng.random() < HAS_EMAIL:
                    member.email = self.new_email(member)
                    if rng.random() < CHANGED_EMAIL:
                        member.old_email = self.new_email(member, nickname=rng.random() < 0.5)
            if size >= 2 and rng.random() < SHARED_PHONE_HOUSEHOLDS:
                landline = rng.random() < SHARED_PHONE_IS_LANDLINE
                shared = self.new_phone(head.city if landline else None)
                for member in household:
                    member.home = shared
            if size >= 2 and rng.random() < SHARED_EMAIL_COUPLES:
                couple = household[:2]
                shared = self.new_email(rng.choice(couple))
                for member in couple:
                    member.email = shared
                    member.shares_email = True
            self.persons.extend(household)
        # namesakes: unrelated persons who get the full name of another person
        slavic = [p for p in self.persons if p.origin == "slavic"]
        alone = [p for p in slavic if p.household == 1]
        for person in rng.sample(alone, min(len(alone), int(len(self.persons) * NAMESAKE_SHARE))):
            model = rng.choice(slavic)
            if model is person or model.gender != person.gender or model.last == person.last:
                continue
            person.last, person.first = model.last, model.first
            if rng.random() < 0.5:
                person.middle = model.middle
            if rng.random() < NAMESAKE_SAME_CITY:
                person.city = model.city
            person.namesake_of = model.id

    # -------------------------------------------------------------- typing

    def yo(self, text: str) -> str:
        if "ё" in text.lower() and self.rng.random() < YO_AS_E:
            return text.replace("ё", "е").replace("Ё", "Е")
        return text

    def typo(self, text: str, rate: float) -> str:
        rng = self.rng
        if len(text) < 4 or rng.random() >= rate:
            return text
        i = rng.randrange(1, len(text) - 1)
        kind = rng.random()
        if kind < 0.4 and text[i].lower() in SIMILAR_LETTERS:
            return text[:i] + SIMILAR_LETTERS[text[i].lower()] + text[i + 1:]
        if kind < 0.7:
            return text[:i] + text[i + 1:]
        if kind < 0.85:
            return text[:i] + text[i] + text[i:]
        return text[:i - 1] + text[i] + text[i - 1] + text[i + 1:]

    def phone_text(self, digits: str, mobile_style: bool = True) -> str:
        rng = self.rng
        a, b, c, d = digits[:3], digits[3:6], digits[6:8], digits[8:]
        styles = [
            (f"8 ({a}) {b}-{c}-{d}", 18), (f"+7 {a} {b} {c} {d}", 14), (f"8{digits}", 14), (digits, 7),
            (f"+7 ({a}) {b}-{c}-{d}", 12), (f"8-{a}-{b}-{c}-{d}", 8), (f"+7{digits}", 10), (f"7{digits}", 6),
            (f"8 {a} {b}{c}{d}", 6), (f"({a}) {b}-{c}-{d}", 3), (f"+7-{a}-{b}{c}{d}", 2),
        ]
        return rng.choices([s for s, _ in styles], [w for _, w in styles])[0]

    def city_text(self, person: Person) -> str:
        canonical = person.city
        for name, _weight, spellings in CITIES:
            if name == canonical:
                return self.rng.choice(spellings) if self.rng.random() < 0.45 else canonical
        return canonical

    def email_text(self, address: str, typo_rate: float = 0.0) -> str:
        rng = self.rng
        if typo_rate and rng.random() < typo_rate:
            local, domain = address.split("@")
            if domain in DOMAIN_TYPOS:
                address = f"{local}@{rng.choice(DOMAIN_TYPOS[domain])}"
        if rng.random() < EMAIL_CASE_SPACE:
            roll = rng.random()
            if roll < 0.4:
                address = address[0].upper() + address[1:]
            elif roll < 0.6:
                address = address.upper()
            elif roll < 0.8:
                local, domain = address.split("@")
                address = local.title() + "@" + domain.capitalize()
            else:
                address = f" {address} "
        return address

    def first_name_form(self, person: Person, diminutive_rate: float) -> str:
        if person.origin != "foreign" and self.rng.random() < diminutive_rate and person.first in DIMINUTIVES:
            return self.rng.choice(DIMINUTIVES[person.first])
        return person.first

    def cased(self, text: str) -> str:
        roll = self.rng.random()
        if roll < UPPER_CASE:
            return text.upper()
        if roll < UPPER_CASE + LOWER_CASE:
            return text.lower()
        return text

    # -------------------------------------------------------------- sources

    def sheet_row(self, person: Person) -> list[str]:
        rng = self.rng
        last, first, middle = (self.typo(self.yo(part), NAME_TYPO) for part in (person.last, person.first, person.middle))
        if person.origin == "foreign":
            name = rng.choice([f"{last} {first}", f"{first} {last}"])
        else:
            orders = [(f"{last} {first} {middle}", 70), (f"{first} {last}", 12), (f"{first} {middle} {last}", 7),
                      (f"{last} {first}", 7), (f"{last} {first[0]}. {middle[0]}.", 2), (f"{first}", 2)]
            name = rng.choices([o for o, _ in orders], [w for _, w in orders])[0]
            name = self.cased(name)
        phones = []
        if person.mobile and (person.home is None or rng.random() < 0.7):
            phones.append(person.mobile)
        if person.home and (not phones or rng.random() < TWO_PHONES_IN_CELL * 4):
            phones.append(person.home)
        if len(phones) == 1 and rng.random() < 0.06:
            phones = []  # the manager did not write it down
        phone = ", ".join(self.phone_text(p) for p in phones[:2] if p)
        if person.mobile and person.home and len(phones) == 2 and rng.random() < 0.5:
            phone = phone.replace(", ", "; ")
        email = self.email_text(person.email) if person.email and rng.random() < 0.65 else ""
        city = self.city_text(person) if rng.random() < 0.8 else ""
        birthday = person.birthday.strftime("%d.%m.%Y") if rng.random() < HAS_BIRTHDAY_IN_SHEET else ""
        return [name, phone, email, city, birthday]

    def mailing_names(self, person: Person) -> tuple[str, str]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.2:  # empty (one or both)
            return ("", "") if rng.random() < 0.6 else (self.first_name_form(person, 0.2), "")
        if person.origin == "foreign":
            return person.first, person.last
        if roll < 0.65:  # Latin
            first = self.first_name_form(person, 0.25)
            if first == person.first and first in ENGLISH_FORMS and rng.random() < 0.35:
                latin_first = rng.choice(ENGLISH_FORMS[first])
            else:
                latin_first = translit(first, rng.choice(TRANSLITS))
            latin_last = translit(person.last, rng.choice(TRANSLITS)) if rng.random() < 0.8 else ""
            return latin_first, latin_last
        first = self.yo(self.first_name_form(person, 0.25))
        return first, self.yo(person.last) if rng.random() < 0.75 else ""

    def forms_row(self, person: Person, when: dt.datetime) -> list[str]:
        rng = self.rng
        first = self.typo(self.yo(self.first_name_form(person, 0.45)), NAME_TYPO / 2)
        roll = rng.random()
        if person.origin == "foreign":
            name = person.first if roll < 0.6 else f"{person.first} {person.last}"
        elif roll < 0.7:
            name = first if rng.random() < 0.85 else first.lower()
        elif roll < 0.9:
            name = f"{first} {self.yo(person.last)}"
        else:
            name = f"{self.yo(person.last)} {first}"
        phone_number = person.mobile or person.home
        if person.home and person.mobile and rng.random() < 0.25:
            phone_number = person.home
        phone = self.phone_text(phone_number) if phone_number and rng.random() < 0.88 else ""
        address = person.email
        if person.old_email and rng.random() < 0.5:
            address = person.old_email
        email = self.email_text(address) if address and (rng.random() < 0.4 or not phone) else ""
        city = self.city_text(person) if rng.random() < 0.2 else ""
        return [name, phone, email, city, when.strftime("%Y-%m-%d %H:%M:%S")]

    def sms_name(self, person: Person) -> str:
        first = self.yo(self.first_name_form(person, 0.3))
        if person.origin == "foreign":
            return person.first
        return first if self.rng.random() < 0.6 else f"{first} {self.yo(person.last)}"

    def generate(self, persons: int, holdback: int = 0) -> tuple[Output, Output]:
        rng = self.rng
        self.make_persons(persons)
        out = Output()
        sheet_id = itertools.count(1)
        forms: list[tuple[dt.datetime, Person]] = []
        mailing: dict[str, tuple[Person, str]] = {}  # normalized address -> person, typed address
        sms: dict[str, Person] = {}
        start, end = dt.datetime(2023, 1, 1), dt.datetime(2026, 10, 31, 23, 59, 59)
        period = int((end - start).total_seconds())
        for person in self.persons:
            in_sheet = rng.random() < IN_SHEET
            in_mailing = bool(person.email) and rng.random() < IN_MAILING
            in_forms = rng.random() < IN_FORMS
            in_sms = bool(person.mobile or person.home) and rng.random() < IN_SMS
            if not (in_sheet or in_mailing or in_forms or in_sms):
                choice = rng.random()
                if choice < 0.5:
                    in_sheet = True
                elif choice < 0.75 or not (person.mobile or person.home):
                    in_forms = True
                else:
                    in_sms = True
            if in_sheet:
                for _ in range(2 if rng.random() < SHEET_DUPLICATE else 1):
                    rid = str(next(sheet_id))
                    out.rows["sheet"].append([rid, *self.sheet_row(person)])
                    out.truth.append(("sheet", rid, person.id))
            if in_mailing:
                addresses = [person.email]
                if person.old_email and rng.random() < 0.7:
                    addresses.append(person.old_email)
                    if rng.random() < 0.4:
                        addresses.remove(person.email)  # only the old one is subscribed
                for address in addresses:
                    typed = self.email_text(address, EMAIL_DOMAIN_TYPO).strip()
                    key = typed.lower()
                    if key not in mailing:  # a shared address is one subscriber
                        mailing[key] = (person, typed)
            if in_forms:
                when = start + dt.timedelta(seconds=rng.randrange(period))
                forms.append((when, person))
                while rng.random() < FORMS_EXTRA_SUBMISSION:
                    when = min(when + dt.timedelta(seconds=rng.randrange(3600, 120 * 86400)), end)
                    forms.append((when, person))
            if in_sms:
                number = person.mobile if person.mobile and (not person.home or rng.random() < 0.8) else person.home
                if number and number not in sms and not (number[:3] in CITY_CODES.values() and number == person.home):
                    sms[number] = person
        for key, (person, typed) in mailing.items():
            status = rng.choices(["subscribed", "unsubscribed", "cleaned"], [85, 12, 3])[0]
            names = self.mailing_names(person)
            out.rows["mailing"].append([typed, names[0], names[1], status])
            out.truth.append(("mailing", typed, person.id))
        for number, person in sms.items():
            rid = "7" + number
            out.rows["sms"].append([rid, self.sms_name(person)])
            out.truth.append(("sms", rid, person.id))
        forms.sort(key=lambda item: item[0])
        new = Output()
        tranids = rng.sample(range(10_000_000, 99_999_999), len(forms))
        for index, ((when, person), tranid) in enumerate(zip(forms, tranids)):
            rid = f"{tranid}:{rng.randrange(10**9, 10**10)}"
            target = new if index >= len(forms) - holdback else out
            target.rows["forms"].append([rid, *self.forms_row(person, when)])
            target.truth.append(("forms", rid, person.id))
        return out, new


# ------------------------------------------------------------------ files

MAPPINGS = {
    "sheet": """# The client base kept by a manager (cp1251, ";").
fields:
  full_name: {from: ФИО, transforms: [split_name]}
  phone: {from: Телефон, transforms: [phone]}
  email: {from: E-mail, transforms: [email]}
  city: Город
  birthday: {from: Дата рождения, transforms: [{date: DD.MM.YYYY}]}
""",
    "mailing": """# An e-mail service export.
fields:
  email: {from: Email, transforms: [email]}
  first_name: First Name
  last_name: Last Name
  x_mailing_status: {from: Status, transforms: [lower]}
""",
    "forms": """# Site form submissions.
fields:
  full_name: {from: Имя, transforms: [split_name]}
  phone: {from: Телефон, transforms: [phone]}
  email: {from: Email, transforms: [email]}
  city: Город
  x_submitted: Дата
""",
    "sms": """# An SMS service list.
fields:
  phone: {from: Телефон, transforms: [phone]}
  full_name: {from: Имя, transforms: [split_name]}
""",
}
HUB_YAML = """# Four sources of one small business, generated by bench/identity/generate.py.
# Identity settings are hub's defaults.
connectors:
  sheet:
    plugin: csv
    role: source
    path: sheet.csv
    id_column: №
    mapping: sheet
  mailing:
    plugin: csv
    role: source
    path: mailing.csv
    id_column: Email
    mapping: mailing
  forms:
    plugin: csv
    role: source
    path: forms.csv
    id_column: tranid
    mapping: forms
  sms:
    plugin: csv
    role: source
    path: sms.csv
    id_column: Телефон
    mapping: sms

normalize:
  default_region: RU
"""


def write_csv(path: Path, source: str, rows: list[list[str]], header: bool = True, append: bool = False) -> None:
    encoding, delimiter, terminator = FILES[source]
    if not header and encoding == "utf-8-sig":
        encoding = "utf-8"  # rows to append to a file that has its BOM
    with open(path, "a" if append else "w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator=terminator)
        if header:
            writer.writerow(HEADERS[source])
        writer.writerows(rows)


def write_truth(path: Path, truth: list[tuple[str, str, str]], append: bool = False) -> None:
    with open(path, "a" if append else "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        if not append:
            writer.writerow(["source", "external_id", "person_id"])
        writer.writerows(truth)


def generate(out_dir: Path, persons: int, seed: int, holdback: int = 0) -> dict:
    """Write the four sources, truth.csv, hub.yaml and mappings into ``out_dir``; return a summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    generator = Generator(seed)
    data, new = generator.generate(persons, holdback)
    for source in SOURCES:
        write_csv(out_dir / f"{source}.csv", source, data.rows[source])
    write_truth(out_dir / "truth.csv", data.truth)
    if holdback:
        write_csv(out_dir / "forms-new.csv", "forms", new.rows["forms"], header=False)
        write_truth(out_dir / "truth-new.csv", new.truth)
    (out_dir / "mappings").mkdir(exist_ok=True)
    for source, text in MAPPINGS.items():
        (out_dir / "mappings" / f"{source}.yaml").write_text(text, encoding="utf-8")
    (out_dir / "hub.yaml").write_text(HUB_YAML, encoding="utf-8")
    people = generator.persons
    summary = {
        "persons": len(people),
        "seed": seed,
        "records": {source: len(data.rows[source]) for source in SOURCES},
        "records_total": len(data.truth),
        "held_back_forms": len(new.truth),
        "persons_with_records": len(_sources_per_person(data.truth + new.truth)),
        "persons_in_one_source_only": sum(
            1 for count in _sources_per_person(data.truth).values() if count == 1),
        "shared_phone_persons": sum(1 for p in people if p.home),
        "shared_email_persons": sum(1 for p in people if p.shares_email),
        "namesakes": sum(1 for p in people if p.namesake_of),
        "changed_email": sum(1 for p in people if p.old_email),
        "foreigners": sum(1 for p in people if p.origin == "foreign"),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return summary


def _sources_per_person(truth: list[tuple[str, str, str]]) -> dict[str, int]:
    seen: dict[str, set[str]] = {}
    for source, _rid, person in truth:
        seen.setdefault(person, set()).add(source)
    return {person: len(sources) for person, sources in seen.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument("--holdback", type=int, default=0,
                        help="keep the K newest form submissions in forms-new.csv (for an incremental run)")
    args = parser.parse_args()
    summary = generate(args.out, args.persons, args.seed, args.holdback)
    print(json.dumps(summary, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
