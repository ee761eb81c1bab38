"""Russian name data for ``generate_ru2.py``, the second generated contact set.

Written apart from hub's own name tables (``hub/names.py``, ``hub/data/names/``) and from the
pools of ``generate.py``: it does not import them and was not derived from them, so the
``ru2`` set tests hub on names, short forms and spellings it was not built around.

* ``MALE`` / ``FEMALE``: first names as (official form, [short forms], [Latin spellings
  seen in the wild]), roughly by popularity (the generator weighs them Zipf-like);
  ``FIRST_VARIANTS`` (Наталья / Наталия), ``LATIN_DIM`` (Sasha, Katya).
* ``patronymic`` (with irregular ones), ``SURNAMES`` (common, by popularity),
  ``RARE_SURNAMES`` (a long tail), ``female_surname``.
* ``CITIES`` (weight, spellings people type, landline codes), e-mail ``DOMAINS`` with
  ``DOMAIN_TYPOS``, ``NICK_WORDS`` for nickname addresses, ``COMPANY_DOMAINS``.
* ``translit`` in six systems: ICAO passport, the 1997-2010 passport rules, GOST
  7.79 B without apostrophes, BGN/PCGN and two informal ones; ``NEIGHBOURS`` (keys next
  to each other on the Russian keyboard, for typos).
"""

import re

# (official form, short forms, Latin spellings), by popularity
MALE = [
    ("Александр", ["Саша", "Саня", "Шура", "Сашка"], ["Alexander", "Alexandr", "Aleksandr", "Alex"]),
    ("Сергей", ["Серёжа", "Серёга"], ["Sergey", "Sergei", "Serge"]),
    ("Дмитрий", ["Дима", "Митя", "Димон"], ["Dmitry", "Dmitriy", "Dmitri"]),
    ("Андрей", ["Андрюша"], ["Andrey", "Andrei", "Andrew"]),
    ("Алексей", ["Лёша", "Алёша", "Лёха"], ["Alexey", "Alexei", "Aleksey", "Alex"]),
    ("Максим", ["Макс"], ["Maxim", "Maksim", "Max"]),
    ("Евгений", ["Женя"], ["Evgeny", "Evgeniy", "Yevgeny", "Eugene"]),
    ("Владимир", ["Вова", "Володя"], ["Vladimir"]),
    ("Иван", ["Ваня"], ["Ivan"]),
    ("Михаил", ["Миша"], ["Mikhail", "Michael"]),
    ("Николай", ["Коля"], ["Nikolay", "Nikolai"]),
    ("Артём", ["Тёма"], ["Artem", "Artyom"]),
    ("Павел", ["Паша"], ["Pavel"]),
    ("Игорь", ["Игорёк"], ["Igor"]),
    ("Роман", ["Рома"], ["Roman"]),
    ("Денис", ["Ден"], ["Denis"]),
    ("Олег", [], ["Oleg"]),
    ("Виктор", ["Витя"], ["Victor", "Viktor"]),
    ("Кирилл", ["Киря"], ["Kirill"]),
    ("Антон", ["Антоша", "Тоша"], ["Anton"]),
    ("Юрий", ["Юра"], ["Yuri", "Yury", "Yuriy"]),
    ("Илья", ["Илюша"], ["Ilya", "Ilia"]),
    ("Константин", ["Костя"], ["Konstantin"]),
    ("Никита", [], ["Nikita"]),
    ("Вадим", ["Вадик"], ["Vadim"]),
    ("Владислав", ["Влад", "Владик", "Слава"], ["Vladislav", "Vlad"]),
    ("Вячеслав", ["Слава"], ["Vyacheslav", "Slava"]),
    ("Руслан", [], ["Ruslan"]),
    ("Анатолий", ["Толя"], ["Anatoly", "Anatoliy"]),
    ("Василий", ["Вася"], ["Vasily", "Vasiliy"]),
    ("Виталий", ["Виталик"], ["Vitaly", "Vitaliy"]),
    ("Геннадий", ["Гена"], ["Gennady", "Gennadiy"]),
    ("Валерий", ["Валера"], ["Valery", "Valeriy"]),
    ("Егор", ["Егорка"], ["Egor", "Yegor"]),
    ("Даниил", ["Даня"], ["Daniil", "Daniel"]),
    ("Станислав", ["Стас", "Слава"], ["Stanislav", "Stas"]),
    ("Григорий", ["Гриша"], ["Grigory", "Grigoriy"]),
    ("Пётр", ["Петя"], ["Petr", "Pyotr", "Peter"]),
    ("Борис", ["Боря"], ["Boris"]),
    ("Леонид", ["Лёня"], ["Leonid"]),
    ("Матвей", [], ["Matvey", "Matvei"]),
    ("Тимур", [], ["Timur"]),
    ("Фёдор", ["Федя"], ["Fedor", "Fyodor"]),
    ("Георгий", ["Жора", "Гоша"], ["Georgy", "Georgiy", "George"]),
    ("Ярослав", ["Ярик", "Слава"], ["Yaroslav"]),
    ("Семён", ["Сёма"], ["Semen", "Semyon"]),
    ("Степан", ["Стёпа"], ["Stepan"]),
    ("Тимофей", ["Тима"], ["Timofey", "Timofei"]),
    ("Арсений", ["Сеня"], ["Arseny", "Arseniy"]),
    ("Глеб", [], ["Gleb"]),
    ("Лев", ["Лёва"], ["Lev", "Leo"]),
    ("Марк", [], ["Mark"]),
    ("Эдуард", ["Эдик"], ["Eduard"]),
    ("Аркадий", ["Аркаша"], ["Arkady", "Arkadiy"]),
    ("Валентин", ["Валя"], ["Valentin"]),
    ("Данила", ["Даня"], ["Danila"]),
    ("Захар", [], ["Zakhar", "Zahar"]),
    ("Филипп", [], ["Philipp", "Filipp"]),
    ("Всеволод", ["Сева"], ["Vsevolod"]),
    ("Богдан", [], ["Bogdan"]),
    ("Марат", [], ["Marat"]),
    ("Рустам", [], ["Rustam"]),
    ("Ильдар", [], ["Ildar"]),
    ("Ринат", [], ["Rinat"]),
    ("Дамир", [], ["Damir"]),
    ("Артур", [], ["Artur", "Arthur"]),
    ("Яков", ["Яша"], ["Yakov"]),
    ("Родион", ["Родя"], ["Rodion"]),
    ("Вениамин", ["Веня"], ["Veniamin"]),
    ("Ефим", ["Фима"], ["Efim", "Yefim"]),
    ("Савелий", ["Савва"], ["Saveliy"]),
    ("Ростислав", ["Ростик", "Слава"], ["Rostislav"]),
    ("Герман", ["Гера"], ["German", "Herman"]),
    ("Давид", [], ["David"]),
    ("Эльдар", [], ["Eldar"]),
    ("Альберт", ["Алик"], ["Albert"]),
    ("Тихон", [], ["Tikhon"]),
    ("Елисей", [], ["Elisey"]),
    ("Платон", [], ["Platon"]),
    ("Мирон", [], ["Miron"]),
]

# irregular patronymics (m, f); others are built by rule
PATRONYMIC_IRREGULAR = {
    "Илья": ("Ильич", "Ильинична"),
    "Никита": ("Никитич", "Никитична"),
    "Лев": ("Львович", "Львовна"),
    "Павел": ("Павлович", "Павловна"),
    "Пётр": ("Петрович", "Петровна"),
    "Михаил": ("Михайлович", "Михайловна"),
    "Яков": ("Яковлевич", "Яковлевна"),
    "Данила": ("Данилович", "Даниловна"),
    "Савелий": ("Савельевич", "Савельевна"),
    "Фёдор": ("Фёдорович", "Фёдоровна"),
    "Семён": ("Семёнович", "Семёновна"),
    "Артём": ("Артёмович", "Артёмовна"),
}


def patronymic(father, female):
    if father in PATRONYMIC_IRREGULAR:
        return PATRONYMIC_IRREGULAR[father][1 if female else 0]
    if father.endswith("ий"):
        stem = father[:-2]
        # Дмитрий -> Дмитриевич, Юрий -> Юрьевич, Василий -> Васильевич
        if father in ("Дмитрий", "Георгий", "Арсений"):
            return stem + ("иевна" if female else "иевич")
        return stem + ("ьевна" if female else "ьевич")
    if father.endswith("ей") or father.endswith("ай"):
        stem = father[:-1]
        return stem + ("евна" if female else "евич")
    if father.endswith("ь"):
        return father[:-1] + ("евна" if female else "евич")
    return father + ("овна" if female else "ович")


FEMALE = [
    ("Елена", ["Лена"], ["Elena", "Yelena", "Helen"]),
    ("Ольга", ["Оля"], ["Olga"]),
    ("Татьяна", ["Таня"], ["Tatiana", "Tatyana", "Tanya"]),
    ("Наталья", ["Наташа"], ["Natalia", "Natalya", "Natalie"]),
    ("Анна", ["Аня", "Анюта"], ["Anna", "Ann"]),
    ("Мария", ["Маша"], ["Maria", "Mariya", "Marie"]),
    ("Екатерина", ["Катя"], ["Ekaterina", "Katerina", "Yekaterina", "Kate"]),
    ("Ирина", ["Ира"], ["Irina"]),
    ("Светлана", ["Света"], ["Svetlana"]),
    ("Юлия", ["Юля"], ["Julia", "Yulia", "Yuliya", "Iuliia"]),
    ("Анастасия", ["Настя", "Ася"], ["Anastasia", "Anastasiya"]),
    ("Дарья", ["Даша"], ["Daria", "Darya"]),
    ("Марина", [], ["Marina"]),
    ("Людмила", ["Люда", "Мила"], ["Ludmila", "Lyudmila"]),
    ("Галина", ["Галя"], ["Galina"]),
    ("Ксения", ["Ксюша"], ["Ksenia", "Kseniya", "Xenia"]),
    ("Виктория", ["Вика"], ["Victoria", "Viktoria"]),
    ("Надежда", ["Надя"], ["Nadezhda"]),
    ("Евгения", ["Женя"], ["Evgenia", "Evgeniya", "Eugenia"]),
    ("Александра", ["Саша", "Шура"], ["Alexandra", "Aleksandra"]),
    ("Валентина", ["Валя"], ["Valentina"]),
    ("Полина", ["Поля"], ["Polina"]),
    ("Алина", [], ["Alina"]),
    ("Вера", [], ["Vera"]),
    ("Любовь", ["Люба"], ["Lyubov", "Liubov"]),
    ("Оксана", [], ["Oksana"]),
    ("Кристина", [], ["Kristina", "Christina"]),
    ("Алёна", [], ["Alena", "Alyona"]),
    ("Валерия", ["Лера"], ["Valeria", "Valeriya"]),
    ("Елизавета", ["Лиза"], ["Elizaveta", "Elizabeth"]),
    ("Софья", ["Соня"], ["Sofia", "Sofya", "Sophia"]),
    ("Лариса", ["Лара"], ["Larisa"]),
    ("Вероника", ["Ника"], ["Veronika"]),
    ("Маргарита", ["Рита"], ["Margarita"]),
    ("Тамара", ["Тома"], ["Tamara"]),
    ("Нина", [], ["Nina"]),
    ("Лидия", ["Лида"], ["Lidia", "Lidiya"]),
    ("Антонина", ["Тоня"], ["Antonina"]),
    ("Зинаида", ["Зина"], ["Zinaida"]),
    ("Алла", [], ["Alla"]),
    ("Инна", [], ["Inna"]),
    ("Яна", [], ["Yana"]),
    ("Карина", [], ["Karina"]),
    ("Диана", [], ["Diana"]),
    ("Олеся", ["Леся"], ["Olesya", "Olesia"]),
    ("Жанна", [], ["Zhanna"]),
    ("Раиса", ["Рая"], ["Raisa"]),
    ("Регина", [], ["Regina"]),
    ("Эльвира", ["Эля"], ["Elvira"]),
    ("Алиса", [], ["Alisa", "Alice"]),
    ("Ульяна", ["Уля"], ["Ulyana", "Uliana"]),
    ("Варвара", ["Варя"], ["Varvara"]),
    ("Арина", [], ["Arina"]),
    ("Милана", [], ["Milana"]),
    ("Кира", [], ["Kira"]),
    ("Ангелина", ["Геля"], ["Angelina"]),
    ("Василиса", [], ["Vasilisa"]),
    ("Лилия", ["Лиля"], ["Liliya", "Lilia"]),
    ("Таисия", ["Тася"], ["Taisia", "Taisiya"]),
    ("Клавдия", ["Клава"], ["Klavdia"]),
    ("Снежана", [], ["Snezhana"]),
    ("Гульнара", ["Гуля"], ["Gulnara"]),
    ("Алсу", [], ["Alsu"]),
    ("Лейла", [], ["Leyla", "Leila"]),
    ("Камила", [], ["Kamila"]),
    ("Эвелина", [], ["Evelina"]),
    ("Злата", [], ["Zlata"]),
    ("Майя", [], ["Maya", "Maiya"]),
    ("Римма", [], ["Rimma"]),
    ("Виолетта", [], ["Violetta"]),
    ("Стефания", ["Стеша"], ["Stefania"]),
]

# spelling variants of one official name (both appear in documents)
FIRST_VARIANTS = {"Наталья": ["Наталия"], "Софья": ["София"]}

# Latin forms of diminutives commonly typed by people themselves
LATIN_DIM = {
    "Саша": ["Sasha"], "Даша": ["Dasha"], "Маша": ["Masha"], "Катя": ["Katya", "Katia"],
    "Лена": ["Lena"], "Женя": ["Zhenya", "Jenya"], "Лёша": ["Lesha", "Lyosha"],
    "Дима": ["Dima"], "Серёжа": ["Serezha", "Seryozha"], "Ваня": ["Vanya"],
    "Коля": ["Kolya"], "Миша": ["Misha"], "Таня": ["Tanya"], "Наташа": ["Natasha"],
    "Оля": ["Olya"], "Юля": ["Yulya", "Julia"], "Настя": ["Nastya"], "Ксюша": ["Ksusha", "Ksyusha"],
    "Паша": ["Pasha"], "Макс": ["Max"], "Вова": ["Vova"], "Аня": ["Anya"], "Света": ["Sveta"],
    "Вика": ["Vika"], "Лиза": ["Liza"], "Соня": ["Sonya"],
}

# masculine surname bases; the female form is derived by ending
SURNAMES = """Иванов Смирнов Кузнецов Попов Васильев Петров Соколов Михайлов Новиков Фёдоров
Морозов Волков Алексеев Лебедев Семёнов Егоров Павлов Козлов Степанов Николаев Орлов Андреев
Макаров Никитин Захаров Зайцев Соловьёв Борисов Яковлев Григорьев Романов Воробьёв Сергеев
Кузьмин Фролов Александров Дмитриев Королёв Гусев Киселёв Ильин Максимов Поляков Сорокин
Виноградов Ковалёв Белов Медведев Антонов Тарасов Жуков Баранов Филиппов Комаров Давыдов
Беляев Герасимов Богданов Осипов Сидоров Матвеев Титов Марков Миронов Крылов Куликов Карпов
Власов Мельников Денисов Гаврилов Тихонов Казаков Афанасьев Данилов Савельев Тимофеев Фомин
Чернов Абрамов Мартынов Ефимов Федотов Щербаков Назаров Калинин Исаев Чернышёв Быков Маслов
Родионов Коновалов Лазарев Воронин Климов Филатов Пономарёв Голубев Кудрявцев Прохоров Наумов
Потапов Журавлёв Овчинников Трофимов Леонов Соболев Ермаков Колесников Гончаров Емельянов
Никифоров Грачёв Котов Гришин Ефремов Архипов Громов Кириллов Малышев Панов Моисеев Румянцев
Акимов Кондратьев Бирюков Горбунов Анисимов Ерёмин Тихомиров Галкин Лукьянов Михеев Скворцов
Юдин Белоусов Нестеров Симонов Прокофьев Харитонов Князев Цветков Левин Митрофанов Воронов
Аксёнов Софронов Мальцев Логинов Горшков Савин Краснов Майоров Демидов Елисеев Рыбаков Сафонов
Плотников Дёмин Хохлов Жданов Носков Лапин Шубин Блинов Шаров Рожков Зуев Ширяев Субботин
Некрасов Щукин Лыткин Кулагин Бобров Кабанов Мухин Фадеев Третьяков Агафонов Зимин Ситников
Лобанов Ершов Дорофеев Мишин Ларионов Калашников Пестов Гуляев Самойлов Веселов Рябов
Хабибуллин Галиев Сафин Гарипов Ахметов Алиев
Вишневский Покровский Никольский Каменский Островский Успенский Белецкий Ковальский Соколовский
Толстой Полевой Луговой Береговой
Шевченко Ткаченко Бондаренко Коваленко Кравченко Лысенко
Черных Седых Долгих Белых
Ковальчук Полищук Мельничук Романюк
Петросян Арутюнян Саакян Гаспарян
Ким Цой Пак
Гуревич Рабинович Кац""".split()


def female_surname(m):
    if m.endswith(("ов", "ев", "ёв", "ин", "ын")):
        return m + "а"
    if m.endswith(("ский", "цкий")):
        return m[:-2] + "ая"
    if m.endswith("ской"):
        return m[:-2] + "ая"
    if m.endswith("ой"):
        return m[:-2] + "ая"
    if m.endswith("ый"):
        return m[:-2] + "ая"
    return m  # indeclinable: -енко, -их/-ых, -ук, -ян, Korean, Jewish -ич


CITIES = [
    ("Москва", 0.38, ["Москва", "Москва", "Москва", "Мск", "МСК", "москва", "г. Москва", "Moscow"], ["495", "499"]),
    ("Санкт-Петербург", 0.18, ["Санкт-Петербург", "СПб", "Спб", "Питер", "С.-Петербург", "СПБ", "Санкт Петербург"], ["812"]),
    ("Екатеринбург", 0.05, ["Екатеринбург", "Екб", "Ебург"], ["343"]),
    ("Новосибирск", 0.05, ["Новосибирск", "Новосиб"], ["383"]),
    ("Казань", 0.05, ["Казань"], ["843"]),
    ("Нижний Новгород", 0.04, ["Нижний Новгород", "Н. Новгород", "Нижний"], ["831"]),
    ("Краснодар", 0.04, ["Краснодар"], ["861"]),
    ("Самара", 0.03, ["Самара"], ["846"]),
    ("Ростов-на-Дону", 0.03, ["Ростов-на-Дону", "Ростов"], ["863"]),
    ("Воронеж", 0.03, ["Воронеж"], ["473"]),
    ("Пермь", 0.02, ["Пермь"], ["342"]),
    ("Уфа", 0.02, ["Уфа"], ["347"]),
    ("Челябинск", 0.02, ["Челябинск"], ["351"]),
    ("Тула", 0.02, ["Тула"], ["4872"]),
    ("Ярославль", 0.02, ["Ярославль"], ["4852"]),
    ("Калининград", 0.02, ["Калининград"], ["4012"]),
]

DOMAINS = [("mail.ru", 30), ("yandex.ru", 20), ("gmail.com", 22), ("bk.ru", 5), ("list.ru", 4),
           ("inbox.ru", 4), ("rambler.ru", 5), ("ya.ru", 4), ("icloud.com", 2), ("outlook.com", 2),
           ("hotmail.com", 1), ("yahoo.com", 1)]

DOMAIN_TYPOS = {
    "mail.ru": ["mial.ru", "mail.ri", "mai.ru", "maol.ru", "mail.ry", "meil.ru"],
    "gmail.com": ["gmial.com", "gmail.co", "gmai.com", "gmail.cm", "gmaill.com", "gmal.com"],
    "yandex.ru": ["yandex.ry", "yadex.ru", "yndex.ru", "yandx.ru", "yandex.tu"],
    "bk.ru": ["bk.ry"], "list.ru": ["list.ry", "lits.ru"], "inbox.ru": ["inbox.ry", "inbx.ru"],
    "rambler.ru": ["rambler.ry", "rambker.ru", "ramble.ru"], "ya.ru": ["ya.ry"],
    "icloud.com": ["icoud.com", "iclod.com"], "outlook.com": ["outlok.com"],
    "hotmail.com": ["hotmial.com"], "yahoo.com": ["yaho.com"],
}

NICK_WORDS = ["sunny", "kitty", "tigr", "zvezda", "lisa", "volk", "medved", "angel", "dark", "best",
              "super", "lady", "malysh", "kotik", "zaya", "solnce", "pchelka", "rocker", "sport",
              "lucky", "happy", "star", "moon", "cat", "dog", "fox", "bear", "wolf", "ice", "fire",
              "sweet", "crazy", "funny", "blond", "black", "white", "red", "green", "mister", "docent"]

COMPANY_DOMAINS = ["sber.ru", "rt.ru", "mts.ru", "beeline.ru", "x5.ru", "vtb.ru", "gazprom.ru",
                   "lukoil.com", "magnit.ru", "rzd.ru", "kaspersky.com", "ozon.ru", "wildberries.ru",
                   "hh.ru", "tinkoff.ru", "alfabank.ru", "severstal.com", "nlmk.com", "rosatom.ru",
                   "mosreg.ru", "spbu.ru", "msu.ru", "hse.ru", "itmo.ru", "stroy-invest.ru",
                   "tehnopark.ru", "agro-holding.ru", "med-center.ru", "logistic-pro.ru", "art-studio.ru"]

# ---------------------------------------------------------------- transliteration

BASE = {"а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "з": "z", "и": "i", "к": "k",
        "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u",
        "ф": "f", "ч": "ch", "ш": "sh", "ъ": "", "ь": "", "ы": "y", "э": "e"}

SYSTEMS = {
    # ICAO 9303 (Russian passports since 2014)
    "passport": {"ё": "e", "ж": "zh", "й": "i", "х": "kh", "ц": "ts", "щ": "shch", "ъ": "ie",
                 "ю": "iu", "я": "ia"},
    # the 1997-2010 passport rules (Yuliya, Tatyana)
    "mvd97": {"ё": "e", "ж": "zh", "й": "y", "х": "kh", "ц": "ts", "щ": "shch", "ю": "yu", "я": "ya"},
    # GOST 7.79-2000 system B without its apostrophes (schoolbook 'scientific' look)
    "gost": {"ё": "yo", "ж": "zh", "й": "j", "х": "x", "ц": "c", "щ": "shh", "ю": "yu", "я": "ya"},
    # BGN/PCGN: ye after vowels and at start
    "bgn": {"ё": "yo", "ж": "zh", "й": "y", "х": "kh", "ц": "ts", "щ": "shch", "ю": "yu", "я": "ya"},
    # informal (how people type their own name)
    "informal": {"ё": "e", "ж": "zh", "й": "y", "х": "h", "ц": "ts", "щ": "sch", "ю": "yu", "я": "ya"},
    "informal2": {"ё": "yo", "ж": "zh", "й": "i", "х": "h", "ц": "c", "щ": "sh", "ю": "ju", "я": "ja"},
}
VOWELS = set("аеёиоуыэюяъь")


def _translit_word(w, system):
    table = dict(BASE)
    table.update(SYSTEMS[system])
    low = w.lower()
    out = []
    i = 0
    while i < len(low):
        ch = low[i]
        prev = low[i - 1] if i > 0 else " "
        nxt = low[i + 1] if i + 1 < len(low) else ""
        if system == "bgn" and ch == "е" and (i == 0 or prev in VOWELS):
            t = "ye"
        elif system == "informal2" and ch == "и" and nxt == "й" and i + 2 == len(low):
            t, i = "y", i + 1
        elif system == "informal" and ch == "и" and nxt == "й" and i + 2 == len(low):
            t, i = "iy", i + 1
        elif system == "informal2" and ch == "ь" and nxt == "я":
            t, i = "ia", i + 1
        elif system == "informal2" and ch == "к" and nxt == "с":
            t, i = "x", i + 1
        else:
            t = table.get(ch, ch)
        out.append(t)
        i += 1
    s = "".join(out)
    if w[:1].isupper():
        s = s[:1].upper() + s[1:]
    return s


def translit(text, system="passport"):
    parts = re.split(r"([ \-])", text)
    return "".join(p if p in (" ", "-") else _translit_word(p, system) for p in parts)


KEYBOARD_ROWS = ["йцукенгшщзхъ", "фывапролджэ", "ячсмитьбю"]
NEIGHBOURS = {}
for row in KEYBOARD_ROWS:
    for i, c in enumerate(row):
        NEIGHBOURS[c] = (row[i - 1] if i else "") + (row[i + 1] if i + 1 < len(row) else "")

# less common surnames: the long tail (a real base has thousands of surnames outside the top)
RARE_SURNAMES = [s for s in """Аверьянов Агеев Алфёров Амосов Ананьев Андронов Аникеев Антипов Арефьев Артамонов
Астафьев Бабушкин Базаров Бажов Балашов Баталов Безруков Белкин Бережной Березин Бессонов Бирюлёв
Богомолов Болдырев Бочаров Бурцев Бутаков Быстров Вавилов Ванин Варламов Ведерников Верещагин
Вихров Воеводин Волосов Ворожцов Востриков Вяткин Гайдуков Галушкин Гаршин Гладков Глебов Глушков
Голованов Голиков Горелов Горохов Гребенщиков Гришаев Губанов Гудков Давыдкин Даньшин Дегтярёв
Дёмкин Деревянко Дубинин Дьяконов Евстигнеев Егоршин Ежов Елагин Ерохин Есипов Ефанов Жилин
Жигунов Завьялов Задорнов Зарубин Звягинцев Зеленин Зотов Зубарев Игумнов Извеков Илюхин
Кабалкин Казанцев Калачёв Камышев Каплин Карасёв Каргин Карелин Касаткин Кашин Квасов Кирсанов
Клюев Кобзев Кожевников Козырев Колосов Комлев Кондаков Корнеев Корольков Костромин Кочетков
Кравцов Крашенинников Кудинов Кузовкин Кулешов Куприянов Курочкин Лаптев Ларин Латышев Лежнев
Липатов Лихачёв Лопатин Лосев Лукашин Лунёв Любимов Мазуров Макеев Малахов Маликов Маркин
Масленников Медников Мешков Мигунов Минаев Мокеев Молодцов Мордвинов Мосолов Муратов Мызников
Назин Наседкин Невзоров Неверов Нефёдов Никулин Новосёлов Обухов Огнев Окунев Ордынцев Осокин
Остапов Павленко Пальчиков Панкратов Парамонов Пашков Пеньков Перминов Пестряков Пименов Пичугин
Плетнёв Плешаков Подольский Полунин Пономаренко Порошин Пряхин Пустовалов Пыжов Раевский Разин
Ракитин Распопов Ремизов Репин Рогачёв Рогозин Рудаков Рыжов Рябинин Савичев Сазанов Самохин
Сапожников Свиридов Сёмин Серебряков Скобелев Скороходов Скрябин Слепцов Смолин Снегирёв Сомов
Сотников Старостин Стрельцов Сурков Сычёв Таранов Творогов Темников Теплов Тимохин Токарев
Толкачёв Трегубов Трошин Тюрин Угаров Уткин Ушаков Фалеев Федулов Фёклин Филимонов Фролкин
Хомяков Храмов Хрусталёв Цыганов Чайкин Чеботарёв Чекалин Чепурнов Черкасов Чесноков Чижов
Чистяков Чудинов Шабанов Шапошников Шатров Швецов Шемякин Шестопалов Шипулин Широков Шкловский
Шмелёв Шпаков Штыков Шумилов Щеглов Щедрин Юрченко Яковенко Ямщиков Ярцев Яшин
Абдуллаев Гасанов Мамедов Нуриев Валиев Шайхутдинов Зиннатуллин Исмаилов Каримов""".split()
                  if s not in SURNAMES]
