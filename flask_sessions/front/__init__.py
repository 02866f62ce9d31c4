"""The front: the API any worker serves (auth, validation, JSON); no Playwright."""
