"""echo-bench: measures what a real-time transport costs, through the echo agent."""
