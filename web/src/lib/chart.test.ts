import { describe, expect, it } from 'vitest'
import { lastSum, linePath, linePoints, niceMax, perSecond } from './chart'

describe('chart', () => {
  it.each([
    [0, 1],
    [0.3, 0.5],
    [1, 1],
    [7, 10],
    [12, 20],
    [450, 500],
  ])('niceMax(%s) = %s', (max, nice) => expect(niceMax(max)).toBeCloseTo(nice))

  it('draws lines in the box and breaks them at gaps', () => {
    expect(linePath([0, 5, 10], 100, 50, 10)).toBe('M0,50L50,25L100,0')
    expect(linePath([1, null, 1], 100, 10, 1)).toBe('M0,0M100,0')
    expect(linePath([20], 100, 10, 10)).toBe('M0,0')
    expect(linePath([], 100, 10, 1)).toBe('')
  })

  it('marks values that stand alone', () => {
    expect(linePoints([null, 2, null, 1, 1], 40, 10, 2)).toEqual([
      { x: 10, y: 0, value: 2, alone: true },
      { x: 30, y: 5, value: 1, alone: false },
      { x: 40, y: 5, value: 1, alone: false },
    ])
  })

  it('turns counts into rates', () => {
    expect(perSecond([10, 0, 5], 10)).toEqual([1, 0, 0.5])
    expect(lastSum([1, 2, 3, 4], 2)).toBe(7)
  })
})
