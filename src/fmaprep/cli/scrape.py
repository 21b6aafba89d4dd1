"""``fmaprep scrape``: the throttled FMA website scraper (see fmaprep.acquire.scrape)."""

from fmaprep.acquire.commands import SCRAPE_EXAMPLES, SCRAPE_HELP, add_scrape_arguments, run_scrape

NAME, HELP, EXAMPLES = "scrape", SCRAPE_HELP, SCRAPE_EXAMPLES
add_arguments, run = add_scrape_arguments, run_scrape
