// RFB protocol numbers, data only. Section names refer to rfbproto.rst (rfbproto/rfbproto) and RFC 6143.

/** ProtocolVersion strings are exactly 12 bytes: "RFB xxx.yyy\n" (RFC 6143 §7.1.1). */
export const VERSION_LENGTH = 12;

/** Security types (rfbproto.rst "Security Types"). */
export const SecurityType = {
  Invalid: 0,
  None: 1,
  VncAuth: 2,
} as const;

/** SecurityResult values (rfbproto.rst "SecurityResult"). */
export const SecurityResult = { Ok: 0, Failed: 1, TooManyAttempts: 2 } as const;

/** Client-to-server message types (rfbproto.rst "Client to Server Messages"). */
export const ClientMsg = {
  SetPixelFormat: 0,
  SetEncodings: 2,
  FramebufferUpdateRequest: 3,
  KeyEvent: 4,
  PointerEvent: 5,
  ClientCutText: 6,
  EnableContinuousUpdates: 150,
  ClientFence: 248,
  Xvp: 250,
  SetDesktopSize: 251,
  Qemu: 255,
} as const;

/** Server-to-client message types (rfbproto.rst "Server to Client Messages"). */
export const ServerMsg = {
  FramebufferUpdate: 0,
  SetColourMapEntries: 1,
  Bell: 2,
  ServerCutText: 3,
  EndOfContinuousUpdates: 150,
  ServerFence: 248,
  Xvp: 250,
} as const;

/** Rect encodings (rfbproto.rst "Encodings"). */
export const Encoding = {
  Raw: 0,
  CopyRect: 1,
  RRE: 2,
  CoRRE: 4,
  Hextile: 5,
  Zlib: 6,
  Tight: 7,
  TRLE: 15,
  ZRLE: 16,
} as const;

/** Pseudo-encodings (rfbproto.rst "Pseudo-encodings"). */
export const PseudoEncoding = {
  DesktopSize: -223,
  LastRect: -224,
  Cursor: -239,
  XCursor: -240,
  QemuExtendedKeyEvent: -258,
  DesktopName: -307,
  ExtendedDesktopSize: -308,
  Fence: -312,
  ContinuousUpdates: -313,
  ExtendedMouseButtons: -316,
  /** Compression level hints: -256 + level (0..9). */
  CompressLevel0: -256,
  CompressLevel9: -247,
  /** JPEG quality hints: -32 + quality (0..9). */
  QualityLevel0: -32,
  QualityLevel9: -23,
} as const;

/** FramebufferUpdate with this many rects is terminated by a LastRect pseudo-rect instead. */
export const LAST_RECT_COUNT = 0xffff;

/** Length of a rect header: U16 x, y, w, h, S32 encoding. */
export const RECT_HEADER_LENGTH = 12;

/** Length of PIXEL_FORMAT on the wire (rfbproto.rst "ServerInit"). */
export const PIXEL_FORMAT_LENGTH = 16;

/** ExtendedDesktopSize SCREEN: U32 id, U16 x, y, w, h, U32 flags. */
export const SCREEN_LENGTH = 16;
