/* faceforge web page: The webcam (one stream shared by the tabs that show it) and grabbing a frame as a JPEG. */

import { $ } from './util.js';

// ---------------------------------------------------------------------------------- webcam
export const camera = {
  stream: null,
  users: new Set(),
  async attach(video) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error(window.isSecureContext ? 'This browser cannot use a webcam.'
        : `The webcam only works on https:// pages or on localhost; this page is ${location.origin}.`);
    }
    if (!this.stream || !this.stream.active) {
      try {
        this.stream = await navigator.mediaDevices.getUserMedia(
          { video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
      } catch (e) {
        if (e.name === 'NotAllowedError') throw new Error('The browser did not allow the webcam. Allow it (the camera icon in the address bar) and try again.');
        if (e.name === 'NotFoundError') throw new Error('No webcam found.');
        if (e.name === 'NotReadableError') throw new Error('The webcam is busy (another program uses it?).');
        throw new Error(`Cannot open the webcam: ${e.message || e.name}`);
      }
    }
    video.srcObject = this.stream;
    this.users.add(video);
    await video.play().catch(() => {});
    if (video.readyState < 2 || !video.videoWidth) {
      await new Promise((resolve) => {
        const t = setTimeout(resolve, 5000);
        video.addEventListener('loadeddata', () => { clearTimeout(t); resolve(); }, { once: true });
      });
    }
  },
  detach(video) {
    if (!this.users.has(video)) return;
    this.users.delete(video);
    video.pause();
    video.srcObject = null;
    if (!this.users.size && this.stream) {
      this.stream.getTracks().forEach((t) => t.stop());
      this.stream = null;
    }
  },
};

export const grabCanvas = document.createElement('canvas');

/** The video's current frame as a JPEG Blob, at most maxW pixels wide. */
export function grab(video, maxW = 640, quality = 0.85) {
  const vw = video.videoWidth, vh = video.videoHeight;
  if (!vw || !vh) return Promise.resolve(null);
  const s = Math.min(1, maxW / vw);
  grabCanvas.width = Math.round(vw * s);
  grabCanvas.height = Math.round(vh * s);
  grabCanvas.getContext('2d').drawImage(video, 0, 0, grabCanvas.width, grabCanvas.height);
  return new Promise((resolve) => grabCanvas.toBlob(resolve, 'image/jpeg', quality));
}

export function isImageFile(f) {
  return f && (f.type.startsWith('image/') || /\.(jpe?g|png|gif|bmp|webp|tiff?|p[bgpn]m)$/i.test(f.name));
}
