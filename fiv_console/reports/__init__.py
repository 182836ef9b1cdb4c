"""Reports: the figures of a date range in the tenant's time zone, by queue, by agent and over time, read
from the conversations' segments (sql/0016) and the presence log; and their CSV exports."""
