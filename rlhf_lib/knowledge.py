"""The world's knowledge base: facts the course writes itself (lesson 00).

Everything the simulated world knows lives here as plain data: historical and space events, animals, and a movie
catalog. `tasks.py`, `responses.py` and `web.py` turn these facts into prompts, written responses and "web" pages,
and the gold labeler (`labelers.py`) checks responses against them. Each entry carries English and Korean names.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    key: str
    name: dict[str, str]        # noun phrase, e.g. {"en": "the moon landing", "ko": "달 착륙"}
    year: int
    who: dict[str, str]         # the people involved
    did: dict[str, str]         # verb phrase for "Tell me about when {who} {did} in {year}"
    fact: dict[str, str]        # one true encyclopedia sentence
    child: dict[str, str]       # a simple explanation for a 6 year old (two sentences)
    domain: str                 # "space" or "history"


@dataclass(frozen=True)
class Animal:
    key: str
    name: dict[str, str]
    food: dict[str, str]
    home: dict[str, str]
    trait: dict[str, str]       # one true sentence


@dataclass(frozen=True)
class Movie:
    title: str
    year: int
    genre: str                  # one of GENRES
    plot: dict[str, str]        # one-line plot


def _e(key, en, ko, year, who_en, who_ko, did_en, did_ko, fact_en, fact_ko, child_en, child_ko, domain):
    return Event(key, {"en": en, "ko": ko}, year, {"en": who_en, "ko": who_ko}, {"en": did_en, "ko": did_ko},
                 {"en": fact_en, "ko": fact_ko}, {"en": child_en, "ko": child_ko}, domain)


EVENTS: tuple[Event, ...] = (
    _e("moon_landing", "the moon landing", "달 착륙", 1969, "Neil Armstrong and Buzz Aldrin", "닐 암스트롱과 버즈 올드린",
       "walked on the moon", "달 위를 걸었", "Apollo 11 landed on the moon in 1969, and Neil Armstrong and Buzz Aldrin walked on it.",
       "1969년 아폴로 11호가 달에 착륙했고 닐 암스트롱과 버즈 올드린이 달 위를 걸었습니다.",
       "In 1969 a rocket called Apollo 11 carried astronauts to the moon. Neil Armstrong and Buzz Aldrin stepped out and walked on it.",
       "1969년에 아폴로 11호라는 로켓이 우주비행사들을 달까지 데려갔어요. 닐 암스트롱과 버즈 올드린이 내려서 달 위를 걸었어요.", "space"),
    _e("columbus", "Columbus's first voyage", "콜럼버스의 첫 항해", 1492, "Christopher Columbus", "크리스토퍼 콜럼버스",
       "came to the US", "미국에 왔", "Christopher Columbus was born in 1451, reached the Americas in 1492 and died in 1506.",
       "크리스토퍼 콜럼버스는 1451년에 태어나 1492년에 아메리카에 도착했고 1506년에 죽었습니다.",
       "In 1492 Christopher Columbus sailed across the ocean with three ships. He reached islands in the Americas.",
       "1492년에 크리스토퍼 콜럼버스는 배 세 척으로 바다를 건넜어요. 그는 아메리카의 섬에 도착했어요.", "history"),
    _e("first_flight", "the first airplane flight", "최초의 비행기 비행", 1903, "the Wright brothers", "라이트 형제",
       "flew the first airplane", "첫 비행기를 날렸", "The Wright brothers flew the first airplane in 1903.",
       "라이트 형제는 1903년에 첫 비행기를 날렸습니다.",
       "In 1903 two brothers named Wright built a small airplane. It flew through the air for the very first time.",
       "1903년에 라이트 형제가 작은 비행기를 만들었어요. 그 비행기가 처음으로 하늘을 날았어요.", "history"),
    _e("gagarin", "the first human spaceflight", "최초의 유인 우주 비행", 1961, "Yuri Gagarin", "유리 가가린",
       "flew into space", "우주로 날아갔", "Yuri Gagarin became the first human in space in 1961.",
       "유리 가가린은 1961년에 우주에 간 첫 번째 사람이 되었습니다.",
       "In 1961 Yuri Gagarin rode a rocket far above the sky. He was the first person to go to space.",
       "1961년에 유리 가가린이 로켓을 타고 하늘 높이 올라갔어요. 그는 우주에 간 첫 번째 사람이었어요.", "space"),
    _e("sputnik", "the launch of Sputnik", "스푸트니크 발사", 1957, "the Soviet Union", "소련",
       "launched Sputnik", "스푸트니크를 발사했", "The Soviet Union launched Sputnik, the first satellite, in 1957.",
       "소련은 1957년에 첫 인공위성 스푸트니크를 발사했습니다.",
       "In 1957 people sent a small metal ball called Sputnik into space. It went around the Earth and beeped.",
       "1957년에 사람들이 스푸트니크라는 작은 금속 공을 우주로 보냈어요. 그것은 지구를 돌며 삐삐 소리를 냈어요.", "space"),
    _e("hangul", "the creation of Hangul", "한글 창제", 1443, "King Sejong", "세종대왕",
       "created Hangul", "한글을 만들었", "King Sejong created Hangul, the Korean alphabet, in 1443.",
       "세종대왕은 1443년에 한국의 글자인 한글을 만들었습니다.",
       "In 1443 King Sejong made new letters so everyone could read. These letters are called Hangul.",
       "1443년에 세종대왕이 모두가 읽을 수 있도록 새 글자를 만들었어요. 이 글자를 한글이라고 해요.", "history"),
    _e("berlin_wall", "the fall of the Berlin Wall", "베를린 장벽 붕괴", 1989, "the people of Berlin", "베를린 시민들",
       "opened the Berlin Wall", "베를린 장벽을 열었", "The Berlin Wall fell in 1989 and the people of Berlin crossed it freely.",
       "베를린 장벽은 1989년에 무너졌고 베를린 시민들은 자유롭게 건너갔습니다.",
       "In 1989 a big wall that split the city of Berlin was opened. Families on both sides could meet again.",
       "1989년에 베를린을 나누던 큰 벽이 열렸어요. 양쪽의 가족들이 다시 만날 수 있었어요.", "history"),
    _e("titanic", "the sinking of the Titanic", "타이타닉호 침몰", 1912, "the passengers of the Titanic", "타이타닉호 승객들",
       "sailed on the Titanic", "타이타닉호를 탔", "The Titanic hit an iceberg and sank in 1912.",
       "타이타닉호는 1912년에 빙산에 부딪혀 가라앉았습니다.",
       "In 1912 a very big ship called the Titanic hit a huge piece of ice. The ship sank into the cold sea.",
       "1912년에 타이타닉이라는 아주 큰 배가 커다란 얼음덩이에 부딪혔어요. 배는 차가운 바다로 가라앉았어요.", "history"),
    _e("eiffel", "the building of the Eiffel Tower", "에펠탑 건설", 1889, "Gustave Eiffel", "귀스타브 에펠",
       "built the Eiffel Tower", "에펠탑을 지었", "Gustave Eiffel's company finished the Eiffel Tower in Paris in 1889.",
       "귀스타브 에펠의 회사는 1889년에 파리에 에펠탑을 완성했습니다.",
       "In 1889 workers in Paris built a very tall tower of iron. It is called the Eiffel Tower.",
       "1889년에 파리의 일꾼들이 아주 높은 철탑을 지었어요. 그 탑을 에펠탑이라고 불러요.", "history"),
    _e("hubble", "the launch of the Hubble telescope", "허블 망원경 발사", 1990, "NASA", "나사",
       "launched the Hubble telescope", "허블 망원경을 발사했", "NASA launched the Hubble space telescope in 1990.",
       "나사는 1990년에 허블 우주 망원경을 발사했습니다.",
       "In 1990 NASA put a giant camera called Hubble into space. It takes pictures of faraway stars.",
       "1990년에 나사가 허블이라는 커다란 카메라를 우주에 올렸어요. 그것은 먼 별들의 사진을 찍어요.", "space"),
    _e("seoul_olympics", "the Seoul Olympics", "서울 올림픽", 1988, "athletes from many countries", "여러 나라의 선수들",
       "competed in Seoul", "서울에서 경기했", "The Summer Olympics were held in Seoul in 1988.",
       "하계 올림픽은 1988년에 서울에서 열렸습니다.",
       "In 1988 athletes from many countries came to Seoul to play sports. They ran, swam and jumped to win medals.",
       "1988년에 여러 나라의 선수들이 서울에 와서 운동 경기를 했어요. 그들은 메달을 따려고 달리고 수영하고 뛰었어요.", "history"),
    _e("printing_press", "the invention of the printing press", "인쇄기 발명", 1440, "Johannes Gutenberg", "요하네스 구텐베르크",
       "invented the printing press", "인쇄기를 발명했", "Johannes Gutenberg invented the printing press around 1440.",
       "요하네스 구텐베르크는 1440년 무렵 인쇄기를 발명했습니다.",
       "Around 1440 Johannes Gutenberg built a machine that could print many pages. Books became easy to make.",
       "1440년 무렵 요하네스 구텐베르크가 많은 종이를 찍어 내는 기계를 만들었어요. 책을 쉽게 만들 수 있게 되었어요.", "history"),
    _e("curiosity", "the Curiosity rover landing on Mars", "큐리오시티 화성 착륙", 2012, "NASA", "나사",
       "landed a rover on Mars", "화성에 탐사차를 착륙시켰", "NASA landed the Curiosity rover on Mars in 2012.",
       "나사는 2012년에 큐리오시티 탐사차를 화성에 착륙시켰습니다.",
       "In 2012 NASA landed a robot car called Curiosity on Mars. It drives around and studies red rocks.",
       "2012년에 나사가 큐리오시티라는 로봇 자동차를 화성에 내려놓았어요. 그것은 돌아다니며 빨간 돌을 연구해요.", "space"),
    _e("penicillin", "the discovery of penicillin", "페니실린 발견", 1928, "Alexander Fleming", "알렉산더 플레밍",
       "discovered penicillin", "페니실린을 발견했", "Alexander Fleming discovered penicillin in 1928.",
       "알렉산더 플레밍은 1928년에 페니실린을 발견했습니다.",
       "In 1928 Alexander Fleming saw that a little mold could kill germs. That mold became a medicine called penicillin.",
       "1928년에 알렉산더 플레밍은 작은 곰팡이가 세균을 없애는 것을 보았어요. 그 곰팡이가 페니실린이라는 약이 되었어요.", "history"),
    _e("telephone", "the invention of the telephone", "전화기 발명", 1876, "Alexander Graham Bell", "알렉산더 그레이엄 벨",
       "invented the telephone", "전화기를 발명했", "Alexander Graham Bell invented the telephone in 1876.",
       "알렉산더 그레이엄 벨은 1876년에 전화기를 발명했습니다.",
       "In 1876 Alexander Graham Bell made a machine that carried voices over a wire. It was the first telephone.",
       "1876년에 알렉산더 그레이엄 벨이 전선으로 목소리를 보내는 기계를 만들었어요. 그것이 첫 전화기였어요.", "history"),
    _e("ww2_end", "the end of World War II", "제2차 세계 대전 종전", 1945, "the Allied countries", "연합국",
       "ended World War II", "제2차 세계 대전을 끝냈", "World War II ended in 1945.",
       "제2차 세계 대전은 1945년에 끝났습니다.",
       "In 1945 a very big war all over the world finally stopped. People were happy to have peace again.",
       "1945년에 온 세계에서 벌어진 아주 큰 전쟁인 제2차 세계 대전이 마침내 멈췄어요. 사람들은 다시 평화를 찾아 기뻐했어요.", "history"),
)

# Extra true dates about people, used by factual questions and the gold labeler's fact check.
PERSON_DATES: dict[str, dict[str, int]] = {
    "Christopher Columbus": {"born": 1451, "died": 1506},
    "Neil Armstrong": {"born": 1930, "died": 2012},
    "King Sejong": {"born": 1397, "died": 1450},
}
PERSON_KO = {"Christopher Columbus": "크리스토퍼 콜럼버스", "Neil Armstrong": "닐 암스트롱", "King Sejong": "세종대왕"}


def _a(key, en, ko, food_en, food_ko, home_en, home_ko, trait_en, trait_ko):
    return Animal(key, {"en": en, "ko": ko}, {"en": food_en, "ko": food_ko}, {"en": home_en, "ko": home_ko},
                  {"en": trait_en, "ko": trait_ko})


ANIMALS: tuple[Animal, ...] = (
    _a("blue_whale", "blue whale", "대왕고래", "krill", "크릴", "the ocean", "바다", "The blue whale is the largest animal on Earth.", "대왕고래는 지구에서 가장 큰 동물입니다."),
    _a("penguin", "penguin", "펭귄", "fish", "물고기", "Antarctica", "남극", "Penguins are birds that swim but cannot fly.", "펭귄은 헤엄치지만 날지 못하는 새입니다."),
    _a("panda", "panda", "판다", "bamboo", "대나무", "the forests of China", "중국의 숲", "Pandas spend most of the day eating.", "판다는 하루의 대부분을 먹으며 보냅니다."),
    _a("camel", "camel", "낙타", "desert plants", "사막 식물", "the desert", "사막", "Camels can walk for days without water.", "낙타는 물 없이 며칠 동안 걸을 수 있습니다."),
    _a("koala", "koala", "코알라", "eucalyptus leaves", "유칼립투스 잎", "Australia", "호주", "Koalas sleep for most of the day.", "코알라는 하루의 대부분을 잡니다."),
    _a("polar_bear", "polar bear", "북극곰", "seals", "물개", "the Arctic", "북극", "Polar bears have thick fur to stay warm.", "북극곰은 따뜻하게 지내려고 두꺼운 털이 있습니다."),
    _a("honeybee", "honeybee", "꿀벌", "nectar", "꽃꿀", "hives", "벌집", "Honeybees make honey and help flowers grow.", "꿀벌은 꿀을 만들고 꽃이 자라도록 돕습니다."),
    _a("elephant", "elephant", "코끼리", "grass", "풀", "the savanna", "초원", "Elephants use their long trunks to drink water.", "코끼리는 긴 코로 물을 마십니다."),
    _a("owl", "owl", "부엉이", "mice", "쥐", "the forest", "숲", "Owls hunt at night and see well in the dark.", "부엉이는 밤에 사냥하고 어둠 속에서 잘 봅니다."),
    _a("dolphin", "dolphin", "돌고래", "squid", "오징어", "warm seas", "따뜻한 바다", "Dolphins talk to each other with clicks.", "돌고래는 딸깍 소리로 서로 이야기합니다."),
)

GENRES: dict[str, str] = {  # genre -> Korean name
    "superhero": "슈퍼히어로", "comedy": "코미디", "horror": "공포", "romance": "로맨스",
    "science fiction": "공상과학", "animation": "애니메이션", "drama": "드라마",
}

# A catalog of invented films (titles and plots written for this course).
MOVIES: tuple[Movie, ...] = (
    Movie("Iron Falcon", 2015, "superhero", {"en": "a pilot builds a flying suit to save her city", "ko": "한 조종사가 도시를 구하려고 날 수 있는 옷을 만든다"}),
    Movie("Captain Thunder", 2017, "superhero", {"en": "a shy teacher gains the power of storms", "ko": "수줍은 선생님이 폭풍의 힘을 얻는다"}),
    Movie("The Shield League", 2019, "superhero", {"en": "six heroes team up to stop a falling moon", "ko": "여섯 영웅이 떨어지는 달을 막으려고 힘을 합친다"}),
    Movie("Night Spider", 2021, "superhero", {"en": "a student climbs walls to fight crime at night", "ko": "한 학생이 밤에 벽을 타며 범죄와 싸운다"}),
    Movie("Quantum Girl", 2023, "superhero", {"en": "a girl who can shrink saves her brother", "ko": "몸을 줄일 수 있는 소녀가 동생을 구한다"}),
    Movie("The Last Laugh Hotel", 2012, "comedy", {"en": "two cousins run a hotel where nothing works", "ko": "두 사촌이 아무것도 안 되는 호텔을 운영한다"}),
    Movie("Wedding Chaos", 2016, "comedy", {"en": "a dog ruins a wedding in funny ways", "ko": "개 한 마리가 결혼식을 웃기게 망친다"}),
    Movie("My Boss Is a Cat", 2020, "comedy", {"en": "an office worker finds that his boss is a cat", "ko": "회사원이 자기 상사가 고양이라는 것을 알게 된다"}),
    Movie("The Silent House", 2011, "horror", {"en": "a family hears whispers in an empty house", "ko": "한 가족이 빈 집에서 속삭임을 듣는다"}),
    Movie("Midnight Forest", 2018, "horror", {"en": "campers are lost in a forest that moves", "ko": "야영객들이 움직이는 숲에서 길을 잃는다"}),
    Movie("The Doll Room", 2022, "horror", {"en": "a toy maker's dolls come alive at night", "ko": "장난감 장인의 인형들이 밤에 살아난다"}),
    Movie("Letters in Spring", 2013, "romance", {"en": "two strangers fall in love by writing letters", "ko": "두 낯선 사람이 편지를 쓰며 사랑에 빠진다"}),
    Movie("Seoul Rain", 2019, "romance", {"en": "a painter and a chef meet on rainy days in Seoul", "ko": "화가와 요리사가 서울의 비 오는 날에 만난다"}),
    Movie("The Star Garden", 2014, "science fiction", {"en": "astronauts grow a garden on a distant planet", "ko": "우주비행사들이 먼 행성에 정원을 가꾼다"}),
    Movie("Signal from Mars", 2016, "science fiction", {"en": "a radio engineer hears a voice from Mars", "ko": "라디오 기술자가 화성에서 오는 목소리를 듣는다"}),
    Movie("Time Station", 2021, "science fiction", {"en": "a train station sends people back in time", "ko": "기차역이 사람들을 과거로 보낸다"}),
    Movie("Little Moon Fox", 2015, "animation", {"en": "a fox cub travels to the moon to find its mother", "ko": "아기 여우가 엄마를 찾으려고 달로 여행한다"}),
    Movie("Robot Bakery", 2018, "animation", {"en": "a robot opens a bakery in a small town", "ko": "로봇이 작은 마을에 빵집을 연다"}),
    Movie("Ocean Friends", 2022, "animation", {"en": "a young dolphin saves a coral reef", "ko": "어린 돌고래가 산호초를 구한다"}),
    Movie("The Long Road Home", 2010, "drama", {"en": "a father walks across the country to see his son", "ko": "아버지가 아들을 만나려고 나라를 가로질러 걷는다"}),
    Movie("Paper Cranes", 2017, "drama", {"en": "a nurse folds paper cranes for her patients", "ko": "간호사가 환자들을 위해 종이학을 접는다"}),
    Movie("Winter Piano", 2020, "drama", {"en": "an old pianist teaches a boy to play again", "ko": "나이 든 피아니스트가 소년에게 다시 연주를 가르친다"}),
)
