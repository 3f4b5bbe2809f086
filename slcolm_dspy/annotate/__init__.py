"""Growing the long tail: choose the sentences to annotate next (`select`), export them
pre-annotated for correction in brat or Label Studio and read the corrections back (`exchange`),
and add them to the train split with provenance (`grow`)."""
