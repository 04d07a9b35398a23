"""fal.ai text-to-video through fal's queue, paying at most once for each clip.

- `submit`: the one POST that can cost money, and its three outcomes (accepted, refused, uncertain);
  its `fal_client_internals` is the only function touching fal_client's private names.
- `job`: one paid request as a state machine; its transitions are the only journal writes.
- `collect`: from a journaled request to a clip in the store (wait, result, download), through
  the Job's transitions, and what each outcome means.
- `backend`: `FalBackend`, which decides "store hit, re-attach or submit" and hands over to the Job.
- `errors`: what fal's answers mean (transient or not), fal's reasons, key scrubbing, and the
  messages of a shot blocked by its journal record (uncertain, refused, lost, quarantined).
- `download`: fetching and verifying a clip from fal's media host.

This package's own module imports nothing: import the module you need.
"""
