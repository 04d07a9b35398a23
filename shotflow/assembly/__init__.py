"""From clips to the final video: bring each clip to the output spec, transitions, join, contact sheet.

Every clip is normalised once, as soon as it lands, by one fixed recipe (`normalise`: size, fit,
fps, pixel format, x264 settings, 48 kHz stereo AAC, exact length; settings in `encoding`); the
result is cached next to the raw clip. Clips made by one recipe can be joined by stream copy, so
the join after the last clip lands costs a remux, not a re-encode (`join`):

- cut: the concat demuxer copies the video; the audio is decoded and encoded once more (AAC
  packets copied across files slip). That encode is most of a cut join's time (~1 s per 40 s),
  so it can be done ahead: `normalise.clip_audio` decodes a clip's sound as `normalise` makes it
  to a WAV as soon as the clip lands (cheap), `soundtrack.encode_soundtrack` encodes them all
  once the last one is there, while the last clip's video is still being normalised, and
  `join(..., audio=...)` copies it.
- overlapping cuts (each cut has its own: a crossfade, a fade through black or white, a wipe or
  a slide, see `transitions.EFFECTS`; a plain cut between two clips has no overlap): only the
  overlaps (tail T of one clip, head T of the next) are rendered with xfade; the middles are read
  by the concat demuxer between keyframes the recipe forced there (at each clip's own overlaps:
  `recipe.clip_edges`) and copied. Audio cannot be cut at packets like that, so each span's audio
  is decoded to a WAV, exact to the sample, and their concatenation is encoded once (while the
  overlaps' video renders, when some must be). With `pieces_dir`, overlaps and WAVs are kept
  there (`pieces`), and `join.prepare_join` makes them as clips land, so the join after the last
  one only renders the pieces that touch it.

No ffmpeg process opens more than two clips, and a join runs a bounded number at once, so
memory does not grow with the number of shots. Every file is written beside its destination and
renamed over it once complete; the final video is checked (streams, codecs, frames, length)
first, and never lands silently over an earlier, different one (`destination`).

The modules, each owning one thing:
- recipe: what goes where, in whole frames (each cut's overlap, each clip's edges and keyframes,
  the final length);
- encoding: the encoder settings, and the one way ffmpeg is run into a file (`encode`);
- formats: what is written for .mp4, .mov and .webm (`OUTPUT_FORMATS`, read by the preflight);
- normalise: one clip to the output spec, and its sound, cached next to the raw clip;
- transitions: the effects of an overlapping cut and their filters (add a transition here);
- pieces: an overlapping join's parts, named by their inputs; concat: the concat demuxer's lists;
- soundtrack: the clips' sound with the storyboard's soundtrack under it, encoded once;
- conformance: whether clips can be stream-copied together (else they are normalised again);
- join: `join` and `prepare_join`; destination: temporary files, renames, `keep_earlier`;
- contactsheet: one labelled frame per shot.
"""
