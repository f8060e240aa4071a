#!/usr/bin/env python3
"""Writes tests/fixtures/datasets/: a few rows in the real layout of each
dataset aha recognises, as Parquet (written by pyarrow, as the Hugging Face
hub's exports are: snappy-compressed, lists as 3-level `list<element>`) and
as JSONL. The rows are made up here, in each dataset's shape and style; the
column names, types and nesting are the datasets' own.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install pyarrow
    /tmp/venv/bin/python scripts/make_dataset_fixtures.py
"""
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "datasets")

MESSAGES = pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))

DATASETS = {
    # openai/gsm8k, config main
    "gsm8k": (
        pa.schema([("question", pa.string()), ("answer", pa.string())]),
        [
            {
                "question": "Mia picks 12 apples in the morning and 15 in the afternoon. She gives 7 to her neighbour. How many apples does she have left?",
                "answer": "Mia picks 12 + 15 = <<12+15=27>>27 apples.\nAfter giving 7 away she has 27 - 7 = <<27-7=20>>20 apples.\n#### 20",
            },
            {
                "question": "A box holds 6 rows of 8 pencils. A teacher uses 1,000 pencils a year. How many boxes does she need for a year, rounded up?",
                "answer": "A box holds 6 * 8 = <<6*8=48>>48 pencils.\n1000 / 48 = 20.83, so she needs 21 boxes.\n#### 21",
            },
        ],
    ),
    # hendrycks/competition_math (MATH)
    "math": (
        pa.schema([("problem", pa.string()), ("level", pa.string()), ("type", pa.string()), ("solution", pa.string())]),
        [
            {
                "problem": "What is the value of $\\frac{1}{2} + \\frac{1}{3}$?",
                "level": "Level 1",
                "type": "Prealgebra",
                "solution": "The common denominator is 6, so $\\frac{1}{2} + \\frac{1}{3} = \\frac{3}{6} + \\frac{2}{6} = \\boxed{\\frac{5}{6}}$.",
            },
            {
                "problem": "Find the positive solution of $x^2 = 12$.",
                "level": "Level 2",
                "type": "Algebra",
                "solution": "Taking square roots, $x = \\sqrt{12} = \\boxed{2\\sqrt{3}}$.",
            },
            {
                "problem": "For which $x$ is $x^2 - 5x + 6 < 0$?",
                "level": "Level 3",
                "type": "Algebra",
                "solution": "The roots are 2 and 3 and the parabola opens upward, so the answer is $\\boxed{(2, 3)}$.",
            },
        ],
    ),
    # HuggingFaceH4/MATH-500
    "math500": (
        pa.schema([("problem", pa.string()), ("solution", pa.string()), ("answer", pa.string()), ("subject", pa.string()), ("level", pa.int64()), ("unique_id", pa.string())]),
        [
            {
                "problem": "What is the area of a circle of radius $3$?",
                "solution": "The area is $\\pi r^2 = 9\\pi$, so the answer is $\\boxed{9\\pi}$.",
                "answer": "9\\pi",
                "subject": "Geometry",
                "level": 1,
                "unique_id": "test/geometry/1.json",
            },
            {
                "problem": "Solve $x^2 - 4x + 1 = 0$.",
                "solution": "By the quadratic formula, $x = \\frac{4 \\pm \\sqrt{12}}{2} = \\boxed{2 \\pm \\sqrt{3}}$.",
                "answer": "2 \\pm \\sqrt{3}",
                "subject": "Algebra",
                "level": 3,
                "unique_id": "test/algebra/2.json",
            },
        ],
    ),
    # AI-MO/NuminaMath-CoT
    "numinamath": (
        pa.schema([("source", pa.string()), ("problem", pa.string()), ("solution", pa.string()), ("messages", MESSAGES)]),
        [
            {
                "source": "synthetic_math",
                "problem": "What is $15\\%$ of $80$?",
                "solution": "$0.15 \\times 80 = 12$, so the answer is $\\boxed{12}$.",
                "messages": [
                    {"content": "What is $15\\%$ of $80$?", "role": "user"},
                    {"content": "$0.15 \\times 80 = 12$, so the answer is $\\boxed{12}$.", "role": "assistant"},
                ],
            },
            {
                "source": "olympiads",
                "problem": "A rectangle has sides $3$ cm and $4$ cm. How long is its diagonal?",
                "solution": "By Pythagoras, $\\sqrt{9 + 16} = 5$, so the diagonal is $\\boxed{5 \\text{ cm}}$.",
                "messages": [
                    {"content": "A rectangle has sides $3$ cm and $4$ cm. How long is its diagonal?", "role": "user"},
                    {"content": "By Pythagoras, $\\sqrt{9 + 16} = 5$, so the diagonal is $\\boxed{5 \\text{ cm}}$.", "role": "assistant"},
                ],
            },
        ],
    ),
    # open-r1/OpenR1-Math-220k (default split)
    "openr1_math": (
        pa.schema(
            [
                ("problem", pa.string()),
                ("solution", pa.string()),
                ("answer", pa.string()),
                ("problem_type", pa.string()),
                ("question_type", pa.string()),
                ("source", pa.string()),
                ("uuid", pa.string()),
                ("is_reasoning_complete", pa.list_(pa.bool_())),
                ("generations", pa.list_(pa.string())),
                ("correctness_math_verify", pa.list_(pa.bool_())),
                ("correctness_llama", pa.list_(pa.bool_())),
                ("finish_reasons", pa.list_(pa.string())),
                ("correctness_count", pa.int64()),
                ("messages", MESSAGES),
            ]
        ),
        [
            {
                "problem": "Find all real $x$ with $|x - 1| = 3$.",
                "solution": "Either $x - 1 = 3$ or $x - 1 = -3$, so $x = 4$ or $x = -2$.",
                "answer": "-2, 4",
                "problem_type": "Algebra",
                "question_type": "math-word-problem",
                "source": "olympiads",
                "uuid": "0b6a1a2e-0000-4000-8000-000000000001",
                "is_reasoning_complete": [True, True],
                "generations": ["<think>\n|x-1| = 3 means x-1 = 3 or -3.\n</think>\nSo $x = \\boxed{-2, 4}$.", "<think>\nx = 4 or x = -2.\n</think>\n$\\boxed{4, -2}$"],
                "correctness_math_verify": [True, True],
                "correctness_llama": None,
                "finish_reasons": None,
                "correctness_count": 2,
                "messages": [
                    {"content": "Find all real $x$ with $|x - 1| = 3$.", "role": "user"},
                    {"content": "<think>\n|x-1| = 3 means x-1 = 3 or -3.\n</think>\nSo $x = \\boxed{-2, 4}$.", "role": "assistant"},
                ],
            },
            {
                "problem": "Prove that the sum of two even numbers is even.",
                "solution": "Write them as $2a$ and $2b$; the sum is $2(a+b)$.",
                "answer": "proof",
                "problem_type": "Number Theory",
                "question_type": "proof",
                "source": "olympiads",
                "uuid": "0b6a1a2e-0000-4000-8000-000000000002",
                "is_reasoning_complete": [True],
                "generations": ["<think>\n2a + 2b = 2(a+b).\n</think>\nThe sum is even."],
                "correctness_math_verify": [False],
                "correctness_llama": None,
                "finish_reasons": None,
                "correctness_count": 0,
                "messages": [
                    {"content": "Prove that the sum of two even numbers is even.", "role": "user"},
                    {"content": "<think>\n2a + 2b = 2(a+b).\n</think>\nThe sum is even.", "role": "assistant"},
                ],
            },
            {
                "problem": "What is $\\frac{3}{4}$ as a decimal?",
                "solution": "$3 \\div 4 = 0.75$.",
                "answer": "0.75",
                "problem_type": "Algebra",
                "question_type": "math-word-problem",
                "source": "cn_contest",
                "uuid": "0b6a1a2e-0000-4000-8000-000000000003",
                "is_reasoning_complete": [True],
                "generations": ["<think>\n3/4 = 0.75\n</think>\n$\\boxed{0.75}$"],
                "correctness_math_verify": [True],
                "correctness_llama": None,
                "finish_reasons": None,
                "correctness_count": 1,
                "messages": [
                    {"content": "What is $\\frac{3}{4}$ as a decimal?", "role": "user"},
                    {"content": "<think>\n3/4 = 0.75\n</think>\n$\\boxed{0.75}$", "role": "assistant"},
                ],
            },
        ],
    ),
    # Jiayi-Pan/Countdown-Tasks-3to4 (TinyZero)
    "countdown": (
        pa.schema([("target", pa.int64()), ("nums", pa.list_(pa.int64()))]),
        [{"target": 98, "nums": [44, 19, 35]}, {"target": 24, "nums": [2, 3, 4]}, {"target": 55, "nums": [90, 80, 25, 20]}],
    ),
    # google-research-datasets/mbpp, config full
    "mbpp": (
        pa.schema([("task_id", pa.int32()), ("text", pa.string()), ("code", pa.string()), ("test_list", pa.list_(pa.string())), ("test_setup_code", pa.string()), ("challenge_test_list", pa.list_(pa.string()))]),
        [
            {
                "task_id": 901,
                "text": "Write a function that returns a list of numbers sorted in ascending order with 42 added at the start.",
                "code": "def sort_with_42(xs):\r\n  return [42] + sorted(xs)",
                "test_list": ["assert sort_with_42([3, 1, 2]) == [42, 1, 2, 3]", "assert sort_with_42([]) == [42]", "assert sort_with_42([5, -1, 5]) == [42, -1, 5, 5]"],
                "test_setup_code": "",
                "challenge_test_list": [],
            },
            {
                "task_id": 902,
                "text": "Write a python function to find the sum of the squares of the first n natural numbers.",
                "code": "def square_sum(n):\r\n  return sum(i * i for i in range(1, n + 1))",
                "test_list": ["assert square_sum(1) == 1", "assert square_sum(3) == 14", "assert square_sum(10) == 385"],
                "test_setup_code": "import math",
                "challenge_test_list": [],
            },
        ],
    ),
    # google-research-datasets/mbpp, config sanitized
    "mbpp_sanitized": (
        pa.schema([("source_file", pa.string()), ("task_id", pa.int32()), ("prompt", pa.string()), ("code", pa.string()), ("test_imports", pa.list_(pa.string())), ("test_list", pa.list_(pa.string()))]),
        [
            {
                "source_file": "Benchmark Questions Verification V2.ipynb",
                "task_id": 903,
                "prompt": "Write a function to find the greatest common divisor of two positive integers.",
                "code": "import math\ndef gcd_of(a, b):\n    return math.gcd(a, b)",
                "test_imports": ["import math"],
                "test_list": ["assert gcd_of(12, 18) == 6", "assert gcd_of(7, 5) == 1", "assert gcd_of(math.factorial(4), 16) == 8"],
            },
        ],
    ),
    # openai/openai_humaneval
    "humaneval": (
        pa.schema([("task_id", pa.string()), ("prompt", pa.string()), ("canonical_solution", pa.string()), ("test", pa.string()), ("entry_point", pa.string())]),
        [
            {
                "task_id": "HumanEval/900",
                "prompt": 'from typing import List\n\n\ndef sort_with_42(numbers: List[int]) -> List[int]:\n    """ Return the numbers sorted in ascending order, with 42 added at the start.\n    >>> sort_with_42([3, 1, 2])\n    [42, 1, 2, 3]\n    """\n',
                "canonical_solution": "    return [42] + sorted(numbers)\n",
                "test": "\n\nMETADATA = {\n    'author': 'aha',\n    'dataset': 'test'\n}\n\n\ndef check(candidate):\n    assert candidate([3, 1, 2]) == [42, 1, 2, 3]\n    assert candidate([]) == [42]\n    assert candidate([5, -1, 5]) == [42, -1, 5, 5]\n",
                "entry_point": "sort_with_42",
            },
            {
                "task_id": "HumanEval/901",
                "prompt": 'def is_palindrome(text: str) -> bool:\n    """ Whether text reads the same backwards.\n    >>> is_palindrome("aba")\n    True\n    """\n',
                "canonical_solution": "    return text == text[::-1]\n",
                "test": "\n\ndef check(candidate):\n    assert candidate('') is True\n    assert candidate('aba') is True\n    assert candidate('ab') is False\n",
                "entry_point": "is_palindrome",
            },
        ],
    ),
    # open-r1/Mixture-of-Thoughts
    "mixture_of_thoughts": (
        pa.schema([("messages", MESSAGES), ("num_tokens", pa.int64()), ("source", pa.string())]),
        [
            {
                "messages": [
                    {"content": "Compute 7 * 3 + 5.", "role": "user"},
                    {"content": "<think>\n7 * 3 = 21, and 21 + 5 = 26.\n</think>\n\nThe answer is $\\boxed{26}$.", "role": "assistant"},
                ],
                "num_tokens": 31,
                "source": "open-r1/OpenR1-Math-220k",
            },
            {
                "messages": [
                    {"content": "You are a careful assistant.", "role": "system"},
                    {"content": "Write a Python function that doubles a number.", "role": "user"},
                    {"content": "<think>\nMultiply by two.\n</think>\n\n```python\ndef double(x):\n    return 2 * x\n```", "role": "assistant"},
                ],
                "num_tokens": 40,
                "source": "open-r1/codeforces-cots",
            },
        ],
    ),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, (schema, rows) in DATASETS.items():
        table = pa.Table.from_pylist(rows, schema=schema)
        pq.write_table(table, os.path.join(OUT, f"{name}.parquet"), compression="snappy")
        with open(os.path.join(OUT, f"{name}.jsonl"), "w") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    # A hub-style folder of two splits, two train shards: data/{train,test}-*.parquet.
    shards = os.path.join(OUT, "gsm8k_hub", "main")
    os.makedirs(shards, exist_ok=True)
    schema, rows = DATASETS["gsm8k"]
    for file, part in [("train-00000-of-00002.parquet", rows[:1]), ("train-00001-of-00002.parquet", rows[1:]), ("test-00000-of-00001.parquet", rows[:1])]:
        pq.write_table(pa.Table.from_pylist(part, schema=schema), os.path.join(shards, file), compression="snappy")
    # The same rows with the other codecs aha reads.
    for codec in ["zstd", "gzip"]:
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), os.path.join(OUT, f"gsm8k.{codec}.parquet"), compression=codec)


if __name__ == "__main__":
    main()
