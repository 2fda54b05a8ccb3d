# The built-in corpus of hnet-gpt: small, varied Python written for this project so that `hnet-gpt train`
# runs with no data argument. Each top-level function or class is one document; the split puts whole
# functions (by name) on the training or the validation side, so the two never share a text.


def add(a, b):
    """Return the sum of a and b."""
    return a + b


def clamp(value, low, high):
    """Limit value to the closed interval [low, high]."""
    if low > high:
        raise ValueError("low must not exceed high")
    return max(low, min(value, high))


def is_even(n):
    """Tell whether an integer is even."""
    return n % 2 == 0


def factorial(n):
    """Compute n! iteratively."""
    if n < 0:
        raise ValueError("factorial is undefined for negative numbers")
    result = 1
    for k in range(2, n + 1):
        result *= k
    return result


def fibonacci(n):
    """Return the n-th Fibonacci number, with fibonacci(0) == 0."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def gcd(a, b):
    """Greatest common divisor by Euclid's algorithm."""
    while b:
        a, b = b, a % b
    return abs(a)


def lcm(a, b):
    """Least common multiple of two integers."""
    if a == 0 or b == 0:
        return 0
    return abs(a * b) // gcd(a, b)


def is_prime(n):
    """Primality by trial division up to the square root."""
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    d = 3
    while d * d <= n:
        if n % d == 0:
            return False
        d += 2
    return True


def primes_below(limit):
    """Sieve of Eratosthenes: all primes smaller than limit."""
    if limit < 3:
        return []
    sieve = [True] * limit
    sieve[0] = sieve[1] = False
    for i in range(2, int(limit ** 0.5) + 1):
        if sieve[i]:
            sieve[i * i::i] = [False] * len(range(i * i, limit, i))
    return [i for i, flag in enumerate(sieve) if flag]


def reverse_words(sentence):
    """Reverse the order of the words in a sentence."""
    return " ".join(reversed(sentence.split()))


def is_palindrome(text):
    """Check whether text reads the same backwards, ignoring case and non-letters."""
    letters = [c.lower() for c in text if c.isalnum()]
    return letters == letters[::-1]


def count_words(text):
    """Count how often each word occurs."""
    counts = {}
    for word in text.lower().split():
        word = word.strip(".,;:!?\"'()")
        if word:
            counts[word] = counts.get(word, 0) + 1
    return counts


def most_common(items):
    """Return the most frequent item and its count."""
    best, best_count = None, 0
    seen = {}
    for item in items:
        seen[item] = seen.get(item, 0) + 1
        if seen[item] > best_count:
            best, best_count = item, seen[item]
    return best, best_count


def flatten(nested):
    """Flatten arbitrarily nested lists into one list."""
    out = []
    for item in nested:
        if isinstance(item, list):
            out.extend(flatten(item))
        else:
            out.append(item)
    return out


def chunked(items, size):
    """Split a list into consecutive chunks of at most size elements."""
    if size <= 0:
        raise ValueError("size must be positive")
    return [items[i:i + size] for i in range(0, len(items), size)]


def unique(items):
    """Remove duplicates while keeping the first occurrence order."""
    seen = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def binary_search(sorted_items, target):
    """Index of target in a sorted list, or -1 when absent."""
    lo, hi = 0, len(sorted_items) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if sorted_items[mid] == target:
            return mid
        if sorted_items[mid] < target:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1


def bubble_sort(values):
    """Sort a copy of values with bubble sort."""
    values = list(values)
    n = len(values)
    for i in range(n):
        swapped = False
        for j in range(n - 1 - i):
            if values[j] > values[j + 1]:
                values[j], values[j + 1] = values[j + 1], values[j]
                swapped = True
        if not swapped:
            break
    return values


def insertion_sort(values):
    """Sort a copy of values by insertion."""
    out = list(values)
    for i in range(1, len(out)):
        key = out[i]
        j = i - 1
        while j >= 0 and out[j] > key:
            out[j + 1] = out[j]
            j -= 1
        out[j + 1] = key
    return out


def merge_sorted(left, right):
    """Merge two sorted lists into one sorted list."""
    i = j = 0
    merged = []
    while i < len(left) and j < len(right):
        if left[i] <= right[j]:
            merged.append(left[i])
            i += 1
        else:
            merged.append(right[j])
            j += 1
    merged.extend(left[i:])
    merged.extend(right[j:])
    return merged


def merge_sort(values):
    """Sort with merge sort, returning a new list."""
    if len(values) <= 1:
        return list(values)
    mid = len(values) // 2
    return merge_sorted(merge_sort(values[:mid]), merge_sort(values[mid:]))


def quick_sort(values):
    """Sort with a simple quicksort."""
    if len(values) <= 1:
        return list(values)
    pivot = values[len(values) // 2]
    smaller = [v for v in values if v < pivot]
    equal = [v for v in values if v == pivot]
    larger = [v for v in values if v > pivot]
    return quick_sort(smaller) + equal + quick_sort(larger)


def safe_divide(a, b, default=None):
    """Divide a by b, returning default instead of raising on division by zero."""
    try:
        return a / b
    except ZeroDivisionError:
        return default


def mean(values):
    """Arithmetic mean of a non-empty sequence."""
    if not values:
        raise ValueError("mean of an empty sequence")
    return sum(values) / len(values)


def median(values):
    """Median of a non-empty sequence."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("median of an empty sequence")
    mid = n // 2
    if n % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def variance(values):
    """Population variance."""
    m = mean(values)
    return sum((v - m) ** 2 for v in values) / len(values)


def transpose(matrix):
    """Transpose a list of rows."""
    return [list(row) for row in zip(*matrix)]


def matmul(a, b):
    """Multiply two matrices given as lists of rows."""
    if len(a[0]) != len(b):
        raise ValueError("inner dimensions differ")
    return [[sum(x * y for x, y in zip(row, col)) for col in zip(*b)] for row in a]


def dot(u, v):
    """Dot product of two equal-length vectors."""
    return sum(x * y for x, y in zip(u, v))


def celsius_to_fahrenheit(celsius):
    """Convert degrees Celsius to Fahrenheit."""
    return celsius * 9 / 5 + 32


def parse_key_values(text):
    """Parse lines of `key = value` into a dict, skipping comments and blanks."""
    result = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"expected key = value, got {line!r}")
        result[key.strip()] = value.strip()
    return result


def read_lines(path):
    """Read a text file and return its lines without trailing newlines."""
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle]


def write_json(path, data):
    """Write data as pretty-printed JSON."""
    import json

    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")


def retry(func, attempts=3, exceptions=(Exception,)):
    """Call func until it succeeds, at most attempts times."""
    last_error = None
    for _ in range(attempts):
        try:
            return func()
        except exceptions as error:
            last_error = error
    raise last_error


def memoize(func):
    """Cache the results of a function of hashable arguments."""
    cache = {}

    def wrapper(*args):
        if args not in cache:
            cache[args] = func(*args)
        return cache[args]

    return wrapper


def camel_to_snake(name):
    """Convert CamelCase to snake_case."""
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i > 0 and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def snake_to_camel(name):
    """Convert snake_case to CamelCase."""
    return "".join(part.capitalize() for part in name.split("_") if part)


def caesar(text, shift):
    """Shift letters by shift places, keeping case and other characters."""
    out = []
    for ch in text:
        if ch.isalpha():
            base = ord("A") if ch.isupper() else ord("a")
            out.append(chr((ord(ch) - base + shift) % 26 + base))
        else:
            out.append(ch)
    return "".join(out)


def run_length_encode(text):
    """Encode runs of equal characters as (char, count) pairs."""
    pairs = []
    for ch in text:
        if pairs and pairs[-1][0] == ch:
            pairs[-1] = (ch, pairs[-1][1] + 1)
        else:
            pairs.append((ch, 1))
    return pairs


def balanced_brackets(text):
    """Check that (), [] and {} are balanced and properly nested."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack = []
    for ch in text:
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack


def group_by(items, key):
    """Group items into a dict of lists by key(item)."""
    groups = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def window_sums(values, width):
    """Sums of every window of the given width."""
    if width <= 0 or width > len(values):
        return []
    total = sum(values[:width])
    sums = [total]
    for i in range(width, len(values)):
        total += values[i] - values[i - width]
        sums.append(total)
    return sums


def bfs(graph, start):
    """Breadth-first order of the nodes reachable from start."""
    from collections import deque

    seen = {start}
    order = []
    queue = deque([start])
    while queue:
        node = queue.popleft()
        order.append(node)
        for neighbour in graph.get(node, ()):
            if neighbour not in seen:
                seen.add(neighbour)
                queue.append(neighbour)
    return order


def dfs(graph, start, seen=None):
    """Depth-first order of the nodes reachable from start."""
    if seen is None:
        seen = set()
    seen.add(start)
    order = [start]
    for neighbour in graph.get(start, ()):
        if neighbour not in seen:
            order.extend(dfs(graph, neighbour, seen))
    return order


def shortest_path_lengths(graph, start):
    """Dijkstra's algorithm on a dict of {node: [(neighbour, weight), ...]}."""
    import heapq

    dist = {start: 0}
    heap = [(0, start)]
    while heap:
        d, node = heapq.heappop(heap)
        if d > dist.get(node, float("inf")):
            continue
        for neighbour, weight in graph.get(node, ()):
            nd = d + weight
            if nd < dist.get(neighbour, float("inf")):
                dist[neighbour] = nd
                heapq.heappush(heap, (nd, neighbour))
    return dist


class Stack:
    """A last-in first-out stack."""

    def __init__(self):
        self._items = []

    def push(self, item):
        self._items.append(item)

    def pop(self):
        if not self._items:
            raise IndexError("pop from an empty stack")
        return self._items.pop()

    def peek(self):
        return self._items[-1] if self._items else None

    def __len__(self):
        return len(self._items)


class Counter:
    """Count hashable things."""

    def __init__(self, items=()):
        self.counts = {}
        for item in items:
            self.add(item)

    def add(self, item, n=1):
        self.counts[item] = self.counts.get(item, 0) + n

    def most_common(self, k):
        return sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


class BankAccount:
    """A bank account that refuses to go below zero."""

    def __init__(self, owner, balance=0):
        self.owner = owner
        self.balance = balance

    def deposit(self, amount):
        if amount <= 0:
            raise ValueError("deposit must be positive")
        self.balance += amount
        return self.balance

    def withdraw(self, amount):
        if amount > self.balance:
            raise ValueError("insufficient funds")
        self.balance -= amount
        return self.balance


class Vector:
    """A 2-D vector with arithmetic."""

    def __init__(self, x, y):
        self.x = x
        self.y = y

    def __add__(self, other):
        return Vector(self.x + other.x, self.y + other.y)

    def __mul__(self, k):
        return Vector(self.x * k, self.y * k)

    def length(self):
        return (self.x ** 2 + self.y ** 2) ** 0.5

    def __repr__(self):
        return f"Vector({self.x}, {self.y})"


class LRUCache:
    """A least-recently-used cache with a fixed capacity."""

    def __init__(self, capacity):
        from collections import OrderedDict

        self.capacity = capacity
        self.data = OrderedDict()

    def get(self, key, default=None):
        if key not in self.data:
            return default
        self.data.move_to_end(key)
        return self.data[key]

    def put(self, key, value):
        self.data[key] = value
        self.data.move_to_end(key)
        if len(self.data) > self.capacity:
            self.data.popitem(last=False)


class Node:
    """A node of a singly linked list."""

    def __init__(self, value, next=None):
        self.value = value
        self.next = next


def linked_list_to_list(head):
    """Collect the values of a linked list."""
    values = []
    while head is not None:
        values.append(head.value)
        head = head.next
    return values


def reverse_linked_list(head):
    """Reverse a linked list in place and return the new head."""
    previous = None
    while head is not None:
        head.next, previous, head = previous, head, head.next
    return previous


def digits(n):
    """Decimal digits of a non-negative integer, most significant first."""
    if n == 0:
        return [0]
    out = []
    while n:
        n, d = divmod(n, 10)
        out.append(d)
    return out[::-1]


def to_binary(n):
    """Binary representation of a non-negative integer as a string."""
    if n == 0:
        return "0"
    bits = []
    while n:
        bits.append(str(n & 1))
        n >>= 1
    return "".join(reversed(bits))


def roman(n):
    """Roman numeral of an integer between 1 and 3999."""
    if not 0 < n < 4000:
        raise ValueError("out of range")
    table = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
             (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]
    out = []
    for value, numeral in table:
        while n >= value:
            out.append(numeral)
            n -= value
    return "".join(out)


def anagrams(word, candidates):
    """Candidates that are anagrams of word."""
    key = sorted(word.lower())
    return [c for c in candidates if c.lower() != word.lower() and sorted(c.lower()) == key]


def levenshtein(a, b):
    """Edit distance between two strings."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def histogram(values, bins):
    """Counts of values in equal-width bins between min and max."""
    lo, hi = min(values), max(values)
    width = (hi - lo) / bins or 1
    counts = [0] * bins
    for v in values:
        index = min(int((v - lo) / width), bins - 1)
        counts[index] += 1
    return counts


def pairwise(items):
    """Consecutive pairs (a, b), (b, c), ..."""
    return list(zip(items, items[1:]))


def cumulative_sum(values):
    """Running totals of values."""
    total = 0
    out = []
    for v in values:
        total += v
        out.append(total)
    return out


def title_case(text):
    """Capitalise every word except short joining words in the middle."""
    small = {"a", "an", "and", "of", "the", "to", "in"}
    words = text.lower().split()
    return " ".join(w if 0 < i < len(words) - 1 and w in small else w.capitalize() for i, w in enumerate(words))


def validate_email(address):
    """A light check that an address looks like user@domain.tld."""
    user, at, domain = address.partition("@")
    return bool(user) and at == "@" and "." in domain and not domain.startswith(".")
