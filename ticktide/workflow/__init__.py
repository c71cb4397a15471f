"""The historical workflow: replay bars through the live consumers, write results.json and a report."""
