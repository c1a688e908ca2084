/* passcheck.c - check the dirtier guest's "pass N sum S" lines (tests/guests/dirtier.c).
 *
 *   passcheck PAGES [FROM] < lines "N S" (N decimal, S hex)
 *
 * The passes must be consecutive, the first one FROM or FROM+1 (when FROM is
 * given), and each S must be the 64-bit wrapping sum over the PAGES pages of
 * the word dirtier.c writes on pass N. Prints "OK <passes> <last pass>" or
 * "ERR <why>" (one line); exits 0 either way, 2 on bad usage. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* As word_for() in dirtier.c. */
static uint64_t word_for(uint64_t pass, uint64_t i)
{
	return (pass * 0x9e3779b97f4a7c15ull) ^ (i * 0xbf58476d1ce4e5b9ull) ^ 1;
}

static int parse_u64(const char *s, int base, uint64_t *out)
{
	char *end;

	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, base);
	return errno || *end ? -1 : 0;
}

int main(int argc, char **argv)
{
	uint64_t pages, from = 0, n, s, prev = 0, count = 0;
	char line[256], ns[64], ss[64], extra;

	if (argc < 2 || argc > 3 || parse_u64(argv[1], 10, &pages) < 0 || pages == 0 || pages > (1u << 24) ||
	    (argc == 3 && argv[2][0] && parse_u64(argv[2], 10, &from) < 0)) {
		fprintf(stderr, "usage: passcheck PAGES [FROM] < \"N S\" lines\n");
		return 2;
	}
	while (fgets(line, sizeof(line), stdin)) {
		uint64_t sum = 0;

		if (!strchr(line, '\n') && !feof(stdin)) {
			printf("ERR line too long: %.40s...\n", line);
			return 0;
		}
		if (sscanf(line, "%63s %63s %c", ns, ss, &extra) != 2 || parse_u64(ns, 10, &n) < 0 ||
		    parse_u64(ss, 16, &s) < 0) {
			printf("ERR unreadable line: %.60s\n", line);
			return 0;
		}
		if (count == 0 && argc == 3 && argv[2][0] && n != from && n != from + 1) {
			printf("ERR first pass %" PRIu64 ", expected %" PRIu64 " or %" PRIu64 "\n", n, from,
			       from + 1);
			return 0;
		}
		if (count > 0 && n != prev + 1) {
			printf("ERR pass %" PRIu64 " after pass %" PRIu64 "\n", n, prev);
			return 0;
		}
		for (uint64_t i = 0; i < pages; i++)
			sum += word_for(n, i);
		if (sum != s) {
			printf("ERR pass %" PRIu64 " sum %s is wrong\n", n, ss);
			return 0;
		}
		prev = n;
		count++;
	}
	if (count == 0)
		printf("ERR no pass lines\n");
	else
		printf("OK %" PRIu64 " %" PRIu64 "\n", count, prev);
	return 0;
}
